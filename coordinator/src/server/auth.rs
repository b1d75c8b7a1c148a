//! The shared bearer token: checked on every call of both services when configured,
//! compared in constant time. (Clients send it with `patchsweep_api::client::SendToken`.)

use std::sync::Arc;

use tonic::{Request, Status};

/// Server side: refuses calls without `authorization: Bearer <token>`.
#[derive(Clone, Default)]
pub struct RequireToken {
    token: Option<Arc<[u8]>>,
}

impl RequireToken {
    pub fn new(token: Option<&str>) -> Self {
        Self {
            token: token.map(|t| Arc::from(t.as_bytes())),
        }
    }
}

/// Equality whose time depends on the lengths only, not on where the bytes differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl tonic::service::Interceptor for RequireToken {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.token else {
            return Ok(req);
        };
        let given = req
            .metadata()
            .get("authorization")
            .ok_or_else(|| Status::unauthenticated("missing bearer token (set PATCHSWEEP_TOKEN)"))?
            .as_bytes();
        let token = given
            .strip_prefix(b"Bearer ")
            .ok_or_else(|| Status::unauthenticated("authorization is not `Bearer <token>`"))?;
        if constant_time_eq(token, expected) {
            Ok(req)
        } else {
            Err(Status::unauthenticated("wrong bearer token"))
        }
    }
}

/// The token from `PATCHSWEEP_TOKEN`-style text or a file (trailing newline trimmed).
pub fn read_token(
    token: Option<String>,
    file: Option<&std::path::Path>,
) -> Result<Option<String>, String> {
    let token = match (token, file) {
        (Some(t), _) => Some(t),
        (None, Some(f)) => Some(
            std::fs::read_to_string(f)
                .map_err(|e| format!("cannot read token file {}: {e}", f.display()))?,
        ),
        (None, None) => None,
    };
    match token.map(|t| t.trim().to_string()) {
        Some(t) if t.is_empty() => Err("the token is empty".into()),
        other => Ok(other),
    }
}
