//! The per-action dispatch: a decoded request → the [`Backend`] method that
//! runs it → its [`Reply`].

use super::{ActionRequest, Command, Reply};
use crate::backend::{Backend, BackendError, CheckedWrite, WriteCheck};

/// Runs a decoded request on its backend; updates and replacements with a
/// `check` run through [`Backend::write_checked`].
pub(crate) async fn execute(
    backend: &dyn Backend,
    request: ActionRequest,
    check: Option<&dyn WriteCheck>,
) -> Result<Reply, BackendError> {
    let ns = &request.namespace;
    Ok(match (request.command, check) {
        (Command::FindOne(query), _) => Reply::Document(backend.find_one(ns, query).await?),
        (Command::Find(query), _) => Reply::Documents(backend.find(ns, query).await?),
        (Command::InsertOne(document), _) => {
            Reply::InsertedId(backend.insert_one(ns, document).await?)
        }
        (Command::InsertMany(documents), _) => {
            Reply::InsertedIds(backend.insert_many(ns, documents).await?)
        }
        (Command::UpdateOne(query), None) => Reply::Updated(backend.update_one(ns, query).await?),
        (Command::UpdateMany(query), None) => Reply::Updated(backend.update_many(ns, query).await?),
        (Command::ReplaceOne(query), None) => Reply::Updated(backend.replace_one(ns, query).await?),
        (Command::UpdateOne(query), Some(check)) => Reply::Updated(
            backend
                .write_checked(ns, CheckedWrite::UpdateOne(query), check)
                .await?,
        ),
        (Command::UpdateMany(query), Some(check)) => Reply::Updated(
            backend
                .write_checked(ns, CheckedWrite::UpdateMany(query), check)
                .await?,
        ),
        (Command::ReplaceOne(query), Some(check)) => Reply::Updated(
            backend
                .write_checked(ns, CheckedWrite::ReplaceOne(query), check)
                .await?,
        ),
        (Command::DeleteOne(filter), _) => Reply::Deleted(backend.delete_one(ns, filter).await?),
        (Command::DeleteMany(filter), _) => Reply::Deleted(backend.delete_many(ns, filter).await?),
        (Command::Aggregate(pipeline), _) => {
            Reply::Documents(backend.aggregate(ns, pipeline).await?)
        }
    })
}
