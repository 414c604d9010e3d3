//! Frames encoded once from arguments that are JSON texts already, for a fan-out that
//! sends the same bytes to every socket: [`event_frame`], [`ack_frame`].

use serde_json::Value;

use super::encode::push_nsp;

/// A text event encoded once, with arguments that are JSON texts already, as a complete
/// Engine.IO message frame: `4` + `2[<nsp>,]["<event>",<arg>,...]`. A fan-out builds the
/// frame once and sends the same bytes to every socket.
pub fn event_frame(nsp: &str, event: &str, json_args: &[&str]) -> String {
    let mut out = String::with_capacity(
        16 + nsp.len() + event.len() + json_args.iter().map(|a| a.len() + 1).sum::<usize>(),
    );
    out.push('4');
    out.push('2');
    push_nsp(&mut out, nsp);
    out.push('[');
    out.push_str(&Value::from(event).to_string());
    for arg in json_args {
        out.push(',');
        out.push_str(arg);
    }
    out.push(']');
    out
}

/// An acknowledgement with arguments that are JSON texts already, as a complete Engine.IO
/// message frame: `4` + `3[<nsp>,]<id>[<arg>,...]`.
pub fn ack_frame(nsp: &str, id: u64, json_args: &[&str]) -> String {
    let mut out = String::with_capacity(
        24 + nsp.len() + json_args.iter().map(|a| a.len() + 1).sum::<usize>(),
    );
    out.push('4');
    out.push('3');
    push_nsp(&mut out, nsp);
    out.push_str(&id.to_string());
    out.push('[');
    for (i, arg) in json_args.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(arg);
    }
    out.push(']');
    out
}
