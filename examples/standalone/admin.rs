//! The standalone's management subcommands (`keys`, `users`, `logs`) on the
//! state database, and the local admin socket through which they reach a
//! running server that holds a `file:` state directory (which one process
//! at a time can open).
//!
//! A server with a `file:` state listens on `<dir>/admin.sock` (mode 0600,
//! and only connections from the socket owner's user are served); a
//! subcommand given that directory first tries the socket, then opens the
//! directory itself when no server answers. One JSON line each way: the
//! command and its input (a password, an export) in, the output out.

use std::fmt::Display;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tower_data_api::state::StateStores;

/// Subcommands on the state database (`[state]` in the configuration).
#[derive(Debug, clap::Subcommand, serde::Serialize, serde::Deserialize)]
pub enum Admin {
    /// API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Email/password users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Request logs, newest first, one JSON line each.
    Logs(LogsArgs),
}

/// `keys …`.
#[derive(Debug, clap::Subcommand, serde::Serialize, serde::Deserialize)]
pub enum KeysCommand {
    /// Creates a key and prints it (the only time it is shown).
    Create {
        /// The key's name.
        name: String,
    },
    /// Lists the keys (never the keys themselves).
    List,
    /// Refuses a key until it is enabled again.
    Disable {
        /// The key's name.
        name: String,
    },
    /// Accepts a disabled key again.
    Enable {
        /// The key's name.
        name: String,
    },
    /// Deletes a key.
    Delete {
        /// The key's name.
        name: String,
    },
}

/// `users …`; passwords come from `DATA_API_PASSWORD` or standard input.
#[derive(Debug, clap::Subcommand, serde::Serialize, serde::Deserialize)]
pub enum UsersCommand {
    /// Adds a user.
    Add {
        /// The user's email.
        email: String,
    },
    /// Lists the users (never their password hashes).
    List,
    /// Sets a user's password.
    SetPassword {
        /// The user's email.
        email: String,
    },
    /// Refuses a user and ends their sessions.
    Disable {
        /// The user's email.
        email: String,
    },
    /// Accepts a disabled user again.
    Enable {
        /// The user's email.
        email: String,
    },
    /// Removes a user and ends their sessions.
    Remove {
        /// The user's email.
        email: String,
    },
    /// Imports an App Services users export (a JSON array of users) keeping
    /// their ids; email users get no password until `users set-password`.
    Import {
        /// The export's path (`-` for standard input).
        file: std::path::PathBuf,
    },
    /// Lists the custom-token and anonymous identities and their user ids.
    Identities,
}

/// `logs …` filters.
#[derive(Debug, clap::Args, serde::Serialize, serde::Deserialize)]
pub struct LogsArgs {
    /// Entries of the last duration (`30m`, `24h`, `7d`) or since a Unix time.
    #[arg(long)]
    pub since: Option<String>,
    /// Entries answered with this status.
    #[arg(long)]
    pub status: Option<u16>,
    /// Entries of this action (`find`, `auth/login`, …).
    #[arg(long)]
    pub action: Option<String>,
    /// Entries of this key name or user email.
    #[arg(long)]
    pub key: Option<String>,
    /// The entry of this request id (the `co_id` of an error's link).
    #[arg(long)]
    pub request_id: Option<String>,
    /// The most entries shown.
    #[arg(long, default_value_t = 100)]
    pub limit: u64,
}

/// What a command printed: standard output and standard error.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Output {
    /// For standard output (the data: keys, ids, tables, log lines).
    pub stdout: String,
    /// For standard error (notes for the person at the terminal).
    pub stderr: String,
}

impl Output {
    fn line(&mut self, text: impl Display) {
        self.stdout.push_str(&format!("{text}\n"));
    }
}

/// The input a command reads: the password of `users add|set-password`,
/// the export of `users import`. Read where the command was typed, so that
/// a command forwarded to a server reads its terminal, not the server's.
pub fn read_input(admin: &Admin) -> Result<Option<String>, String> {
    match admin {
        Admin::Users(UsersCommand::Add { .. } | UsersCommand::SetPassword { .. }) => {
            read_password().map(Some)
        }
        Admin::Users(UsersCommand::Import { file }) if file.as_os_str() == "-" => {
            std::io::read_to_string(std::io::stdin())
                .map(Some)
                .map_err(|e| format!("cannot read standard input: {e}"))
        }
        Admin::Users(UsersCommand::Import { file }) => std::fs::read_to_string(file)
            .map(Some)
            .map_err(|e| format!("cannot read {}: {e}", file.display())),
        _ => Ok(None),
    }
}

/// A password from `DATA_API_PASSWORD`, or the first line of standard input.
fn read_password() -> Result<String, String> {
    if let Ok(password) = std::env::var("DATA_API_PASSWORD") {
        return Ok(password);
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password: {e}"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn fail(error: impl Display) -> String {
    error.to_string()
}

/// Runs `admin` on `state` with the `input` [`read_input`] gave.
pub async fn execute(
    state: &StateStores,
    admin: Admin,
    input: Option<String>,
) -> Result<Output, String> {
    let mut out = Output::default();
    let input = || input.clone().ok_or("this command needs its input");
    match admin {
        Admin::Keys(KeysCommand::Create { name }) => {
            let key = state.keys.create(&name).await.map_err(fail)?;
            out.line(key);
            out.stderr = format!("key '{name}' created: store it now, it is not shown again\n");
        }
        Admin::Keys(KeysCommand::List) => {
            out.line(format_args!(
                "{:<24} {:<6} {:<22} {:<22} status",
                "name", "source", "created", "last used"
            ));
            for key in state.keys.list().await.map_err(fail)? {
                out.line(format_args!(
                    "{:<24} {:<6} {:<22} {:<22} {}",
                    key.name,
                    key.source,
                    unix_time(key.created_at),
                    key.last_used.map_or("-".to_owned(), unix_time),
                    if key.disabled { "disabled" } else { "enabled" }
                ));
            }
        }
        Admin::Keys(KeysCommand::Disable { name }) => {
            state.keys.set_disabled(&name, true).await.map_err(fail)?
        }
        Admin::Keys(KeysCommand::Enable { name }) => {
            state.keys.set_disabled(&name, false).await.map_err(fail)?
        }
        Admin::Keys(KeysCommand::Delete { name }) => {
            state.keys.delete(&name).await.map_err(fail)?
        }
        Admin::Users(UsersCommand::Add { email }) => {
            let id = state.users.add(&email, input()?).await.map_err(fail)?;
            out.line(id);
        }
        Admin::Users(UsersCommand::List) => {
            out.line(format_args!(
                "{:<24} {:<32} {:<8} {:<22} status",
                "id", "email", "source", "created"
            ));
            for user in state.users.list().await.map_err(fail)? {
                out.line(format_args!(
                    "{:<24} {:<32} {:<8} {:<22} {}",
                    user.id,
                    user.email,
                    user.source,
                    unix_time(user.created_at),
                    if user.disabled { "disabled" } else { "enabled" }
                ));
            }
        }
        Admin::Users(UsersCommand::SetPassword { email }) => state
            .users
            .set_password(&email, input()?)
            .await
            .map_err(fail)?,
        Admin::Users(UsersCommand::Disable { email }) => {
            state.users.set_disabled(&email, true).await.map_err(fail)?
        }
        Admin::Users(UsersCommand::Enable { email }) => state
            .users
            .set_disabled(&email, false)
            .await
            .map_err(fail)?,
        Admin::Users(UsersCommand::Remove { email }) => {
            state.users.remove(&email).await.map_err(fail)?
        }
        Admin::Users(UsersCommand::Import { .. }) => {
            let report = state.import_users(&input()?).await.map_err(fail)?;
            out.line(format_args!(
                "{} users: {} email users added, {} identities linked, {} unchanged, {} skipped",
                report.users,
                report.email_users,
                report.identities,
                report.unchanged,
                report.skipped.len()
            ));
            for line in &report.skipped {
                out.line(format_args!("skipped: {line}"));
            }
        }
        Admin::Users(UsersCommand::Identities) => {
            out.line(format_args!(
                "{:<24} {:<14} {:<6} {:<22} identity",
                "user id", "provider", "source", "created"
            ));
            for identity in state.directory.list().await.map_err(fail)? {
                out.line(format_args!(
                    "{:<24} {:<14} {:<6} {:<22} {}",
                    identity.user_id,
                    identity.provider_type,
                    identity.source,
                    unix_time(identity.created_at),
                    identity.identity_id
                ));
            }
        }
        Admin::Logs(args) => {
            let mut filter = tower_data_api::state::LogFilter::default();
            filter.since = args.since.as_deref().map(parse_since).transpose()?;
            filter.status = args.status;
            filter.action = args.action;
            filter.principal_name = args.key;
            filter.request_id = args.request_id;
            filter.limit = Some(args.limit);
            for entry in state.logs.find(&filter).await.map_err(fail)? {
                out.line(bson::Bson::Document(entry).into_relaxed_extjson());
            }
        }
    }
    Ok(out)
}

/// The admin socket of a `file:` state directory.
pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join("admin.sock")
}

/// One command sent to a running server.
#[derive(Deserialize)]
struct Request {
    admin: Admin,
    input: Option<String>,
}

/// [`Request`] as the sender has it.
#[derive(Serialize)]
struct Sent<'a> {
    admin: &'a Admin,
    input: Option<&'a str>,
}

/// Its answer.
#[derive(Serialize, Deserialize)]
struct Answer {
    result: Result<Output, String>,
}

/// The longest request line accepted (an export of many users).
const MAX_REQUEST: u64 = 64 * 1024 * 1024;

/// Sends `admin` to the server listening on `socket`; `None` when none
/// answers there (no socket, or a stale one).
pub async fn forward(
    socket: &Path,
    admin: &Admin,
    input: Option<&str>,
) -> Option<Result<Output, String>> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut stream = tokio::net::UnixStream::connect(socket).await.ok()?;
    let mut line = serde_json::to_vec(&Sent { admin, input }).ok()?;
    line.push(b'\n');
    if let Err(e) = stream.write_all(&line).await {
        return Some(Err(format!("the server's admin socket failed: {e}")));
    }
    let mut answer = String::new();
    if let Err(e) = BufReader::new(stream).read_line(&mut answer).await {
        return Some(Err(format!("the server's admin socket failed: {e}")));
    }
    Some(
        serde_json::from_str::<Answer>(&answer)
            .map_err(|_| "the server's admin socket answered nonsense".to_owned())
            .and_then(|answer| answer.result),
    )
}

/// Serves the admin socket at `socket` with the running server's `state`,
/// until the process ends. A file left there by a server that is gone is
/// replaced (this process holds the state directory, so no other server
/// can be using it).
pub async fn serve(socket: PathBuf, state: StateStores) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let _ = std::fs::remove_file(&socket);
    let listener = tokio::net::UnixListener::bind(&socket)?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
    let owner = std::fs::metadata(&socket)?.uid();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            if stream.peer_cred().map(|cred| cred.uid()).ok() != Some(owner) {
                continue;
            }
            let state = state.clone();
            tokio::spawn(answer(stream, state));
        }
    });
    Ok(())
}

async fn answer(stream: tokio::net::UnixStream, state: StateStores) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let read = BufReader::new(read)
        .take(MAX_REQUEST)
        .read_line(&mut line)
        .await;
    let result = match read.map_err(fail).and_then(|_| {
        serde_json::from_str::<Request>(&line).map_err(|_| "not an admin command".to_owned())
    }) {
        Ok(request) => execute(&state, request.admin, request.input).await,
        Err(error) => Err(error),
    };
    if let Ok(mut reply) = serde_json::to_vec(&Answer { result }) {
        reply.push(b'\n');
        let _ = write.write_all(&reply).await;
    }
}

/// `30m`, `24h`, `7d`, `90s` ago, or a Unix time, as Unix seconds.
fn parse_since(text: &str) -> Result<i64, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let amount: i64 = number
        .parse()
        .map_err(|_| format!("--since '{text}': expected 30m, 24h, 7d or a Unix time"))?;
    let seconds = match unit {
        "" => return Ok(amount),
        "s" => amount,
        "m" => amount * 60,
        "h" => amount * 3_600,
        "d" => amount * 86_400,
        _ => {
            return Err(format!(
                "--since '{text}': expected 30m, 24h, 7d or a Unix time"
            ))
        }
    };
    Ok(now - seconds)
}

/// Unix seconds as an RFC 3339 UTC time.
fn unix_time(secs: i64) -> String {
    bson::DateTime::from_millis(secs.saturating_mul(1000))
        .try_to_rfc3339_string()
        .unwrap_or_else(|_| secs.to_string())
}
