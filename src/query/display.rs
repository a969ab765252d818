//! Rendering BSON values the way MongoDB's error messages print them.

/// Renders a value the way MongoDB's error messages print BSON (relaxed,
/// shell-like: `{ _id: 1, a: "x" }`).
pub(crate) fn display_value(v: &bson::Bson) -> String {
    use bson::Bson;
    match v {
        Bson::String(s) => format!("\"{}\"", s),
        Bson::Document(d) => display_doc(d),
        Bson::Array(a) => {
            if a.is_empty() {
                return "[]".to_string();
            }
            let items: Vec<String> = a.iter().map(display_value).collect();
            format!("[ {} ]", items.join(", "))
        }
        Bson::Int64(i) => format!("{i}"),
        Bson::Double(d) => {
            if d.is_finite() && d.fract() == 0.0 && d.abs() < 1e15 {
                format!("{d:.1}")
            } else {
                format!("{d}")
            }
        }
        Bson::ObjectId(o) => format!("ObjectId('{}')", o.to_hex()),
        Bson::DateTime(d) => format!("new Date({})", d.timestamp_millis()),
        Bson::Decimal128(d) => format!("NumberDecimal(\"{d}\")"),
        Bson::Null => "null".to_string(),
        Bson::Undefined => "undefined".to_string(),
        Bson::MinKey => "MinKey".to_string(),
        Bson::MaxKey => "MaxKey".to_string(),
        Bson::RegularExpression(r) => format!("/{}/{}", r.pattern, r.options),
        other => format!("{other}"),
    }
}

/// Renders a document like [`display_value`].
pub(crate) fn display_doc(d: &bson::Document) -> String {
    if d.is_empty() {
        return "{}".to_string();
    }
    let items: Vec<String> = d
        .iter()
        .map(|(k, v)| format!("{}: {}", k, display_value(v)))
        .collect();
    format!("{{ {} }}", items.join(", "))
}
