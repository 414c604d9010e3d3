//! Encoding a [`Packet`] for the wire: the text header and the binary attachments to send
//! after it.

use bytes::Bytes;
use serde_json::Value;

use super::data::{Packet, PacketData, DEFAULT_NSP};

impl Packet {
    /// Encodes the packet: the text header (the data of an Engine.IO
    /// message), and the attachments to send after it as binary messages.
    ///
    /// For binary packets the attachment count written is
    /// `attachments.len()`; the caller is responsible for `args` already
    /// holding the matching placeholders. The namespace is written, followed
    /// by `,`, unless it is `"/"` (or empty).
    pub fn encode(&self) -> (String, Vec<Bytes>) {
        let mut out = String::new();
        out.push(self.data.type_char());
        let attachments = match &self.data {
            PacketData::BinaryEvent { attachments, .. }
            | PacketData::BinaryAck { attachments, .. } => {
                out.push_str(&attachments.len().to_string());
                out.push('-');
                attachments.clone()
            }
            _ => Vec::new(),
        };
        push_nsp(&mut out, &self.nsp);
        match &self.data {
            PacketData::Connect(data) => {
                if let Some(data) = data {
                    out.push_str(&data.to_string());
                }
            }
            PacketData::Disconnect => {}
            PacketData::Event {
                event, args, id, ..
            }
            | PacketData::BinaryEvent {
                event, args, id, ..
            } => {
                if let Some(id) = id {
                    out.push_str(&id.to_string());
                }
                push_array(&mut out, Some(event), args);
            }
            PacketData::Ack { args, id } | PacketData::BinaryAck { args, id, .. } => {
                out.push_str(&id.to_string());
                push_array(&mut out, None, args);
            }
            PacketData::ConnectError(data) => out.push_str(&data.to_string()),
        }
        (out, attachments)
    }
}

/// Appends the JSON array `[first, ...rest]` (or `[...rest]`) to `out`.
fn push_array(out: &mut String, first: Option<&str>, rest: &[Value]) {
    out.push('[');
    let mut sep = "";
    if let Some(first) = first {
        out.push_str(&Value::from(first).to_string());
        sep = ",";
    }
    for value in rest {
        out.push_str(sep);
        out.push_str(&value.to_string());
        sep = ",";
    }
    out.push(']');
}

/// Appends `<nsp>,` to `out`, unless `nsp` is the default namespace (or empty).
pub(super) fn push_nsp(out: &mut String, nsp: &str) {
    if !nsp.is_empty() && nsp != DEFAULT_NSP {
        out.push_str(nsp);
        out.push(',');
    }
}
