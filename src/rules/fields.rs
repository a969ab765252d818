//! Field-level permissions: which fields a role reads and writes.
//!
//! A [`FieldAccess`] tree holds one request's permissions (expressions
//! already expanded): each node's `read`/`write` apply to the field and to
//! every subfield `fields` does not list. `write` implies `read`. `_id` is
//! always readable and never checked on insert (it identifies the document).

use std::collections::BTreeMap;

use bson::{Bson, Document};

/// Read/write permission of a field and its subfields, for one request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct FieldAccess {
    pub(crate) read: bool,
    pub(crate) write: bool,
    pub(crate) fields: BTreeMap<String, FieldAccess>,
}

impl FieldAccess {
    /// Every field readable, none writable.
    pub(crate) fn read_all() -> Self {
        Self {
            read: true,
            write: false,
            fields: BTreeMap::new(),
        }
    }

    /// The node of subfield `name`: listed, or inherited from this one.
    fn child(&self, name: &str) -> FieldAccess {
        self.fields
            .get(name)
            .cloned()
            .unwrap_or_else(|| FieldAccess {
                read: self.read,
                write: self.write,
                fields: BTreeMap::new(),
            })
    }

    /// Whether this field and everything under it may be written.
    pub(crate) fn fully_writable(&self) -> bool {
        self.write && self.fields.values().all(FieldAccess::fully_writable)
    }

    /// Whether this field and everything under it may be read.
    pub(crate) fn fully_readable(&self) -> bool {
        self.read && self.fields.values().all(FieldAccess::fully_readable)
    }

    /// Whether anything under this field may be read.
    fn any_readable(&self) -> bool {
        self.read || self.fields.values().any(FieldAccess::any_readable)
    }

    /// Whether anything at all may be read (a role that reads nothing sees no documents).
    pub(crate) fn reads_anything(&self) -> bool {
        self.any_readable()
    }

    /// `document` without the fields this tree does not let the role read.
    pub(crate) fn strip(&self, document: &Document) -> Document {
        let mut out = Document::new();
        for (key, value) in document {
            if key == "_id" {
                out.insert(key.clone(), value.clone());
            } else if let Some(kept) = self.child(key).keep(value) {
                out.insert(key.clone(), kept);
            }
        }
        out
    }

    fn strip_nested(&self, document: &Document) -> Document {
        let mut out = Document::new();
        for (key, value) in document {
            if let Some(kept) = self.child(key).keep(value) {
                out.insert(key.clone(), kept);
            }
        }
        out
    }

    /// What of `value` this node lets the role read.
    fn keep(&self, value: &Bson) -> Option<Bson> {
        if self.fields.is_empty() || self.fully_readable() {
            return self.read.then(|| value.clone());
        }
        if !self.any_readable() {
            return None;
        }
        match value {
            Bson::Document(inner) => Some(Bson::Document(self.strip_nested(inner))),
            Bson::Array(items) => Some(Bson::Array(
                items.iter().filter_map(|item| self.keep(item)).collect(),
            )),
            other => self.read.then(|| other.clone()),
        }
    }

    /// Whether the role may write the field at `path` (dotted; array indexes
    /// and positional segments such as `$[]` stay on the same field). Writing
    /// a field writes everything under it.
    pub(crate) fn can_write_path(&self, path: &str) -> bool {
        let mut node = self.clone();
        for segment in path.split('.') {
            if segment.is_empty() {
                return false;
            }
            if segment.starts_with('$') || segment.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            node = node.child(segment);
        }
        node.fully_writable()
    }

    /// Whether the role reads the whole of the field at `path` (dotted; array
    /// indexes and positional segments stay on the same field; `_id` is
    /// always readable; the empty path is the whole document).
    pub(crate) fn can_read_path(&self, path: &str) -> bool {
        if path == "_id" || path.starts_with("_id.") {
            return true;
        }
        let mut node = self.clone();
        for segment in path.split('.').filter(|s| !s.is_empty()) {
            if segment.starts_with('$') || segment.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            node = node.child(segment);
        }
        node.fully_readable()
    }

    /// `Err(path)` naming the first field of `document` the role may not
    /// write (for inserts and replacements; `_id` exempt).
    pub(crate) fn check_document_write(&self, document: &Document) -> Result<(), String> {
        for (key, value) in document {
            if key == "_id" {
                continue;
            }
            self.child(key).check_value_write(value, key)?;
        }
        Ok(())
    }

    fn check_value_write(&self, value: &Bson, path: &str) -> Result<(), String> {
        if self.fully_writable() {
            return Ok(());
        }
        match value {
            Bson::Document(inner) if !self.fields.is_empty() => {
                for (key, value) in inner {
                    self.child(key)
                        .check_value_write(value, &format!("{path}.{key}"))?;
                }
                Ok(())
            }
            Bson::Array(items) if !self.fields.is_empty() => {
                for item in items {
                    match item {
                        Bson::Document(_) => self.check_value_write(item, path)?,
                        _ if self.write => {}
                        _ => return Err(path.to_owned()),
                    }
                }
                Ok(())
            }
            _ if self.write && self.fields.is_empty() => Ok(()),
            _ => Err(path.to_owned()),
        }
    }

    /// A `$project` stage body keeping exactly the readable fields, `None`
    /// when everything is readable, `Err` when no single projection can
    /// express the tree (a readable field with hidden subfields inside a
    /// hidden parent, for example).
    pub(crate) fn projection(&self) -> Result<Option<Document>, String> {
        if self.fully_readable() {
            return Ok(None);
        }
        let mut out = Document::new();
        if self.read {
            self.exclusions("", &mut out)?;
        } else {
            self.inclusions("", &mut out)?;
            if out.is_empty() {
                // Nothing readable but `_id`.
                out.insert("_id", 1);
            }
        }
        Ok(Some(out))
    }

    fn exclusions(&self, prefix: &str, out: &mut Document) -> Result<(), String> {
        for (name, node) in &self.fields {
            let path = join(prefix, name);
            if name == "_id" && prefix.is_empty() {
                continue;
            }
            if !node.any_readable() {
                out.insert(path, 0);
            } else if node.read {
                node.exclusions(&path, out)?;
            } else {
                return Err(path);
            }
        }
        Ok(())
    }

    fn inclusions(&self, prefix: &str, out: &mut Document) -> Result<(), String> {
        for (name, node) in &self.fields {
            let path = join(prefix, name);
            if node.fully_readable() {
                out.insert(path, 1);
            } else if node.read {
                return Err(path);
            } else if node.any_readable() {
                node.inclusions(&path, out)?;
            }
        }
        Ok(())
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn node(read: bool, write: bool) -> FieldAccess {
        FieldAccess {
            read,
            write,
            fields: BTreeMap::new(),
        }
    }

    /// `name` rw, `salary` hidden, `address` readable with `street` writable,
    /// `meta` hidden except `meta.public` readable; others read-only.
    fn tree() -> FieldAccess {
        let mut address = node(true, false);
        address.fields.insert("street".into(), node(true, true));
        let mut meta = node(false, false);
        meta.fields.insert("public".into(), node(true, false));
        let mut root = node(true, false);
        root.fields.insert("name".into(), node(true, true));
        root.fields.insert("salary".into(), node(false, false));
        root.fields.insert("address".into(), address);
        root.fields.insert("meta".into(), meta);
        root
    }

    #[test]
    fn strips_unreadable_fields_nested_and_in_arrays() {
        let doc = doc! {
            "_id": 1, "name": "a", "salary": 10, "other": true,
            "address": {"street": "s", "zip": 1},
            "meta": [{"public": 1, "secret": 2}, 3],
        };
        assert_eq!(
            tree().strip(&doc),
            doc! {"_id": 1, "name": "a", "other": true,
            "address": {"street": "s", "zip": 1}, "meta": [{"public": 1}]}
        );
        assert_eq!(node(false, false).strip(&doc), doc! {"_id": 1});
        assert!(!node(false, false).reads_anything());
    }

    #[test]
    fn write_paths_include_parents_and_children() {
        let t = tree();
        assert!(t.can_write_path("name"));
        assert!(t.can_write_path("address.street"));
        assert!(t.can_write_path("address.street.0"));
        assert!(
            !t.can_write_path("address"),
            "writing a parent writes its children"
        );
        assert!(!t.can_write_path("salary"));
        assert!(!t.can_write_path("other"));
        assert!(!t.can_write_path("meta.$[].public"));
        assert!(node(true, true).can_write_path("x.y"));
        assert!(t
            .check_document_write(&doc! {"_id": 1, "name": "x"})
            .is_ok());
        assert_eq!(
            t.check_document_write(&doc! {"name": "x", "address": {"street": "s", "zip": 1}}),
            Err("address.zip".to_owned())
        );
        assert!(t
            .check_document_write(&doc! {"address": {"street": "s"}})
            .is_ok());
    }

    #[test]
    fn projections() {
        assert_eq!(FieldAccess::read_all().projection(), Ok(None));
        let mut excl = node(true, false);
        excl.fields.insert("salary".into(), node(false, false));
        assert_eq!(excl.projection(), Ok(Some(doc! {"salary": 0})));
        let mut incl = node(false, false);
        incl.fields.insert("name".into(), node(true, false));
        assert_eq!(incl.projection(), Ok(Some(doc! {"name": 1})));
        assert!(tree().projection().is_err());
    }
}
