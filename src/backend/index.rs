//! Index declarations shared by every backend: [`IndexSpec`].

use std::fmt;

use bson::{doc, Document};

/// The order of one field in an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IndexDirection {
    /// `1`.
    Ascending,
    /// `-1`.
    Descending,
}

impl IndexDirection {
    /// `1` or `-1`, as MongoDB writes it.
    pub fn as_i32(self) -> i32 {
        match self {
            IndexDirection::Ascending => 1,
            IndexDirection::Descending => -1,
        }
    }

    /// The direction MongoDB writes as `1` or `-1`; anything else is `None`.
    pub fn from_i64(value: i64) -> Option<Self> {
        match value {
            1 => Some(IndexDirection::Ascending),
            -1 => Some(IndexDirection::Descending),
            _ => None,
        }
    }
}

/// A secondary index on one collection: its key pattern, whether it is
/// unique, and its name.
///
/// The embedded engine ([`MemoryBackend`](crate::MemoryBackend)) maintains it
/// with every write and uses it to answer queries; [`MongoBackend`](crate::MongoBackend)
/// creates it on the server. Dotted paths reach into embedded documents and
/// arrays (an index over an array field indexes each element, as MongoDB's
/// multikey indexes do).
///
/// ```
/// use tower_data_api::backend::IndexSpec;
///
/// let by_owner = IndexSpec::new([("owner_id", 1), ("created", -1)])?;
/// assert_eq!(by_owner.name(), "owner_id_1_created_-1");
/// let emails = IndexSpec::new([("email", 1)])?.unique(true).named("email_unique")?;
/// assert!(emails.is_unique());
/// # Ok::<(), tower_data_api::backend::IndexSpecError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    keys: Vec<(String, IndexDirection)>,
    unique: bool,
    name: String,
    expire_after: Option<std::time::Duration>,
}

/// Why an [`IndexSpec`] was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpecError(String);

impl fmt::Display for IndexSpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for IndexSpecError {}

/// The most fields one index may have (MongoDB's limit).
const MAX_INDEX_FIELDS: usize = 32;

impl IndexSpec {
    /// An index over `keys` (field path, `1` or `-1`), in order, named as
    /// MongoDB names it (`age_1_name_-1`). Fails for an empty pattern, more
    /// than 32 fields, a direction other than `1`/`-1`, a field given twice,
    /// `_id` alone (it always has its own unique index) or a path MongoDB
    /// refuses (empty segments, a segment starting with `$`).
    pub fn new<K, I>(keys: I) -> Result<Self, IndexSpecError>
    where
        I: IntoIterator<Item = (K, i64)>,
        K: Into<String>,
    {
        let mut fields: Vec<(String, IndexDirection)> = Vec::new();
        for (path, direction) in keys {
            let path = path.into();
            check_path(&path)?;
            let Some(direction) = IndexDirection::from_i64(direction) else {
                return Err(IndexSpecError(format!(
                    "the direction of '{path}' must be 1 or -1, not {direction}"
                )));
            };
            if fields.iter().any(|(p, _)| *p == path) {
                return Err(IndexSpecError(format!("field '{path}' appears twice")));
            }
            fields.push((path, direction));
        }
        if fields.is_empty() {
            return Err(IndexSpecError("an index needs at least one field".into()));
        }
        if fields.len() > MAX_INDEX_FIELDS {
            return Err(IndexSpecError(format!(
                "an index may have at most {MAX_INDEX_FIELDS} fields"
            )));
        }
        if fields.len() == 1 && fields[0].0 == "_id" {
            return Err(IndexSpecError(
                "every collection already has its unique index on _id".into(),
            ));
        }
        let name = fields
            .iter()
            .map(|(p, d)| format!("{p}_{}", d.as_i32()))
            .collect::<Vec<_>>()
            .join("_");
        Ok(IndexSpec {
            keys: fields,
            unique: false,
            name,
            expire_after: None,
        })
    }

    /// Makes it a TTL index: MongoDB deletes a document once the date in
    /// its (single) field is `after` in the past. The embedded engine keeps
    /// it as a plain index and expires nothing by itself (the state stores
    /// also delete what has expired). Fails for a compound index.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_data_api::backend::IndexSpec;
    /// let ttl = IndexSpec::new([("at", 1)])?.expire_after(Duration::from_secs(86_400))?;
    /// assert_eq!(ttl.expires_after(), Some(Duration::from_secs(86_400)));
    /// assert!(IndexSpec::new([("a", 1), ("b", 1)])?.expire_after(Duration::ZERO).is_err());
    /// # Ok::<(), tower_data_api::backend::IndexSpecError>(())
    /// ```
    pub fn expire_after(mut self, after: std::time::Duration) -> Result<Self, IndexSpecError> {
        if self.keys.len() != 1 {
            return Err(IndexSpecError("a TTL index has exactly one field".into()));
        }
        self.expire_after = Some(after);
        Ok(self)
    }

    /// How long after its date a document expires, for a TTL index.
    pub fn expires_after(&self) -> Option<std::time::Duration> {
        self.expire_after
    }

    /// Makes the index unique (or not): no two documents may then share a
    /// key, a missing field counting as `null`.
    #[must_use]
    pub fn unique(mut self, unique: bool) -> Self {
        self.unique = unique;
        self
    }

    /// Gives the index its own name instead of the generated one.
    pub fn named(mut self, name: impl Into<String>) -> Result<Self, IndexSpecError> {
        let name = name.into();
        if name.is_empty() || name.contains('\0') || name.len() > 128 {
            return Err(IndexSpecError(
                "an index name must be 1 to 128 bytes without NUL".into(),
            ));
        }
        self.name = name;
        Ok(self)
    }

    /// The fields and their directions, in order.
    pub fn keys(&self) -> &[(String, IndexDirection)] {
        &self.keys
    }

    /// Whether the index is unique.
    pub fn is_unique(&self) -> bool {
        self.unique
    }

    /// The index's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key pattern as MongoDB writes it: `{"age": 1, "name": -1}`.
    pub fn key_document(&self) -> Document {
        let mut out = doc! {};
        for (path, direction) in &self.keys {
            out.insert(path.clone(), direction.as_i32());
        }
        out
    }

    /// Whether `other` describes the same index (same keys and uniqueness).
    #[cfg(feature = "memory")]
    pub(crate) fn same_index(&self, other: &IndexSpec) -> bool {
        self.keys == other.keys && self.unique == other.unique
    }
}

fn check_path(path: &str) -> Result<(), IndexSpecError> {
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return Err(IndexSpecError(format!(
            "'{path}' is not a field path (empty segment)"
        )));
    }
    if path.split('.').any(|s| s.starts_with('$')) {
        return Err(IndexSpecError(format!(
            "'{path}' is not a field path (a segment starts with '$')"
        )));
    }
    if path.split('.').count() > 64 {
        return Err(IndexSpecError(format!("'{path}' has too many parts")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_mongodb_and_nonsense_is_refused() {
        let spec = IndexSpec::new([("a.b", 1), ("c", -1)]).unwrap();
        assert_eq!(spec.name(), "a.b_1_c_-1");
        assert_eq!(spec.key_document(), doc! {"a.b": 1, "c": -1});
        assert!(!spec.is_unique());
        for bad in [
            IndexSpec::new(Vec::<(&str, i64)>::new()),
            IndexSpec::new([("a", 2)]),
            IndexSpec::new([("a", 1), ("a", -1)]),
            IndexSpec::new([("", 1)]),
            IndexSpec::new([("a..b", 1)]),
            IndexSpec::new([("$a", 1)]),
            IndexSpec::new([("_id", 1)]),
        ] {
            assert!(bad.is_err(), "{bad:?}");
        }
        assert!(IndexSpec::new([("_id", 1), ("a", 1)]).is_ok());
        assert!(spec.named("").is_err());
    }
}
