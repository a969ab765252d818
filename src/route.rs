//! URL routing: which Data API endpoint a request path names.
//!
//! Paths are relative to wherever the service is mounted:
//! `/app/<appId>/endpoint/data/<version>/action/<action>` for the Data API and
//! `/api/client/v2.0/...` for the App Services client API that issues bearer
//! tokens (spec §6). The host is ignored, so regional and global base URLs
//! both work.

use std::fmt;
use std::str::FromStr;

/// A Data API URL version segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    /// `beta`: the 2021 preview, still used by clients copied from the Atlas UI.
    Beta,
    /// `v1`: the generally available version.
    V1,
}

impl Version {
    /// The URL segment.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Beta => "beta",
            Version::V1 => "v1",
        }
    }
}

impl FromStr for Version {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "beta" => Ok(Version::Beta),
            "v1" => Ok(Version::V1),
            _ => Err(()),
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request path the Data API answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route<'a> {
    /// `/app/<app_id>/endpoint/data/<version>/action/<action>`; the version and
    /// action segments are kept raw so unknown ones can be answered with 404.
    Action {
        app_id: &'a str,
        version: &'a str,
        action: &'a str,
    },
    /// `/api/client/v2.0/...`: token issuance and sessions.
    Client(ClientRoute<'a>),
    /// `/app/<app_id>/endpoint/data/<version>/openapi.json`: the OpenAPI
    /// description of that version.
    OpenApi { app_id: &'a str, version: &'a str },
}

/// A path of the App Services client API (spec §6), relative to the mount point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientRoute<'a> {
    /// `/api/client/v2.0/app/<app_id>/auth/providers/<provider>/login`.
    Login { app_id: &'a str, provider: &'a str },
    /// `/api/client/v2.0/app/<app_id>/auth/providers/local-userpass/register`.
    Register { app_id: &'a str },
    /// `/api/client/v2.0/app/<app_id>/location`.
    Location { app_id: &'a str },
    /// `/api/client/v2.0/auth/session` (POST refresh, DELETE logout).
    Session,
    /// `/api/client/v2.0/auth/profile`.
    Profile,
}

impl ClientRoute<'_> {
    /// The name request logs show in their `action` field.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ClientRoute::Login { .. } => "auth/login",
            ClientRoute::Register { .. } => "auth/register",
            ClientRoute::Location { .. } => "location",
            ClientRoute::Session => "auth/session",
            ClientRoute::Profile => "auth/profile",
        }
    }

    fn recognize(rest: &str) -> Option<ClientRoute<'_>> {
        let segments: Vec<&str> = rest.split('/').collect();
        match segments.as_slice() {
            ["auth", "session"] => Some(ClientRoute::Session),
            ["auth", "profile"] => Some(ClientRoute::Profile),
            ["app", app_id, "location"] if !app_id.is_empty() => {
                Some(ClientRoute::Location { app_id })
            }
            ["app", app_id, "auth", "providers", "local-userpass", "register"]
                if !app_id.is_empty() =>
            {
                Some(ClientRoute::Register { app_id })
            }
            ["app", app_id, "auth", "providers", provider, "login"]
                if !app_id.is_empty() && !provider.is_empty() =>
            {
                Some(ClientRoute::Login { app_id, provider })
            }
            _ => None,
        }
    }
}

impl<'a> Route<'a> {
    /// Recognizes a Data API path, or `None` for paths that belong to someone else.
    pub(crate) fn recognize(path: &'a str) -> Option<Route<'a>> {
        if let Some(rest) = path.strip_prefix("/api/client/v2.0/") {
            return ClientRoute::recognize(rest).map(Route::Client);
        }
        let rest = path.strip_prefix("/app/")?;
        let mut segments = rest.split('/');
        let app_id = segments.next()?;
        let shape = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        );
        match shape {
            (Some("endpoint"), Some("data"), Some(version), Some("action"), Some(action), None)
                if !app_id.is_empty() =>
            {
                Some(Route::Action {
                    app_id,
                    version,
                    action,
                })
            }
            (Some("endpoint"), Some("data"), Some(version), Some("openapi.json"), None, None)
                if !app_id.is_empty() =>
            {
                Some(Route::OpenApi { app_id, version })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognizes_action_urls() {
        assert_eq!(
            Route::recognize("/app/data-abcde/endpoint/data/v1/action/findOne"),
            Some(Route::Action {
                app_id: "data-abcde",
                version: "v1",
                action: "findOne"
            })
        );
        assert_eq!(
            Route::recognize("/app/x/endpoint/data/v9/action/nope"),
            Some(Route::Action {
                app_id: "x",
                version: "v9",
                action: "nope"
            })
        );
        assert_eq!(
            Route::recognize("/app/x/endpoint/data/v1/openapi.json"),
            Some(Route::OpenApi {
                app_id: "x",
                version: "v1"
            })
        );
        for other in [
            "/",
            "/health",
            "/app/x/endpoint/data/v1/openapi.yaml",
            "/app/x/endpoint/data/v1/action/find/extra",
            "/app//endpoint/data/v1/action/find",
            "/app/x/endpoint/hello",
        ] {
            assert_eq!(Route::recognize(other), None, "{other}");
        }
    }

    #[test]
    fn recognizes_client_api_urls() {
        let client = |path| match Route::recognize(path) {
            Some(Route::Client(route)) => Some(route),
            _ => None,
        };
        assert_eq!(
            client("/api/client/v2.0/app/data-x/auth/providers/api-key/login"),
            Some(ClientRoute::Login {
                app_id: "data-x",
                provider: "api-key"
            })
        );
        assert_eq!(
            client("/api/client/v2.0/app/data-x/location"),
            Some(ClientRoute::Location { app_id: "data-x" })
        );
        assert_eq!(
            client("/api/client/v2.0/auth/session"),
            Some(ClientRoute::Session)
        );
        assert_eq!(
            client("/api/client/v2.0/auth/profile"),
            Some(ClientRoute::Profile)
        );
        for other in [
            "/api/client/v2.0/auth",
            "/api/client/v2.0/auth/session/x",
            "/api/client/v2.0/app//location",
            "/api/client/v2.0/app/x/auth/providers//login",
            "/api/client/v1.0/auth/session",
        ] {
            assert_eq!(Route::recognize(other), None, "{other}");
        }
        assert_eq!(ClientRoute::Session.name(), "auth/session");
    }
}
