//! The client side of authentication: every gRPC call a client (the CLI,
//! an agent) makes carries `authorization: Bearer <token>`, added by this
//! interceptor so that no call site can forget it.

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// A channel whose calls carry a bearer token.
pub type AuthedChannel = InterceptedService<Channel, Bearer>;

/// Adds a bearer token to each request (none: the request goes without,
/// and the master says what is missing).
#[derive(Clone, Debug, Default)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

#[derive(Debug, thiserror::Error)]
#[error("the token holds characters that cannot go in a header (expected wsm_…)")]
pub struct InvalidToken;

impl Bearer {
    pub fn new(token: Option<&str>) -> Result<Self, InvalidToken> {
        token
            .map(|t| {
                format!("Bearer {}", t.trim())
                    .parse()
                    .map_err(|_| InvalidToken)
            })
            .transpose()
            .map(Bearer)
    }

    /// `channel` with this token on every call.
    pub fn wrap(self, channel: Channel) -> AuthedChannel {
        InterceptedService::new(channel, self)
    }
}

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}
