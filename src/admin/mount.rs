//! The admin UI's namespace on the socket layer: `/admin` mounted (each CONNECT a new
//! [`AdminSocket`]), and the hub observing every socket.

use std::sync::Arc;

use super::app::Admin;
use super::protocol::ADMIN_NAMESPACE;
use super::socket::AdminSocket;
use crate::socketio::{LayerExt, Mount, Namespace};

/// The socket layer's extension: `/admin` mounted, the hub observing.
pub fn layer_ext(admin: &Arc<Admin>) -> Arc<LayerExt> {
    Arc::new(LayerExt {
        mount: Some(Arc::new(AdminMount(admin.clone()))),
        observer: Some(admin.hub.clone()),
    })
}

/// `/admin` on the socket layer.
struct AdminMount(Arc<Admin>);

impl Mount for AdminMount {
    fn namespace(&self) -> &str {
        ADMIN_NAMESPACE
    }

    fn socket(&self) -> Box<dyn Namespace> {
        Box::new(AdminSocket::new(self.0.clone()))
    }
}
