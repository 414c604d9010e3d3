//! The JSON form of a saved message, as the Node server emits it (Prisma's object).

use std::fmt;

use chrono::NaiveDateTime;
use entity::messages::Model;
use serde::ser::{Serialize, SerializeStruct, Serializer};
use serde_json::Value;

/// The saved message as Prisma returns it (and the Node server emits it), serialized
/// straight from the row, keys in the table's column order: `id`, `connectionId`,
/// `senderId`, `receiverId`, `content`, `isRead`, `createdAt`, `updatedAt`, `mediaUrl`,
/// `mediaType`, `mediaName`, `mediaSize`, `mediaThumbnail`; timestamps as [`iso_millis`],
/// absent media fields as `null`. Its `Display` is the JSON text.
pub(crate) struct MessageJson<'a>(pub &'a Model);

impl Serialize for MessageJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let m = self.0;
        let mut s = serializer.serialize_struct("Message", 13)?;
        s.serialize_field("id", &m.id)?;
        s.serialize_field("connectionId", &m.connection_id)?;
        s.serialize_field("senderId", &m.sender_id)?;
        s.serialize_field("receiverId", &m.receiver_id)?;
        s.serialize_field("content", &m.content)?;
        s.serialize_field("isRead", &m.is_read)?;
        s.serialize_field("createdAt", &iso_millis(&m.created_at))?;
        s.serialize_field("updatedAt", &iso_millis(&m.updated_at))?;
        s.serialize_field("mediaUrl", &m.media_url)?;
        s.serialize_field("mediaType", &m.media_type)?;
        s.serialize_field("mediaName", &m.media_name)?;
        s.serialize_field("mediaSize", &m.media_size)?;
        s.serialize_field("mediaThumbnail", &m.media_thumbnail)?;
        s.end()
    }
}

impl fmt::Display for MessageJson<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Serializing strings, booleans and integers into a String cannot fail.
        let text = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

/// The saved message as a JSON value (see [`MessageJson`]).
pub fn message_json(m: &Model) -> Value {
    serde_json::to_value(MessageJson(m)).unwrap_or(Value::Null)
}

/// `2026-01-18T04:59:38.123Z` for a `NaiveDateTime` holding UTC (always 3 fraction digits,
/// `Z`), as JavaScript's `Date.prototype.toISOString` writes it for years 0 to 9999.
///
/// Sub-millisecond digits are truncated, not rounded.
pub fn iso_millis(t: &NaiveDateTime) -> String {
    // `%.3f` truncates to milliseconds (and folds a leap second's fraction back below 1 s).
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use serde_json::json;

    fn at(h: u32, m: u32, s: u32, nano: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 1, 18)
            .and_then(|d| d.and_hms_nano_opt(h, m, s, nano))
            .unwrap()
    }

    fn model() -> Model {
        Model {
            id: "cmkj2x1ab0000ab12cd34ef56".into(),
            connection_id: "conn1".into(),
            sender_id: "user1".into(),
            receiver_id: "user2".into(),
            content: "hello \"there\"".into(),
            is_read: false,
            created_at: at(4, 59, 38, 123_456_789),
            updated_at: at(5, 0, 0, 0),
            media_url: None,
            media_type: None,
            media_name: None,
            media_size: None,
            media_thumbnail: None,
        }
    }

    #[test]
    fn text_message() {
        let v = message_json(&model());
        assert_eq!(
            v,
            json!({
                "id": "cmkj2x1ab0000ab12cd34ef56",
                "connectionId": "conn1",
                "senderId": "user1",
                "receiverId": "user2",
                "content": "hello \"there\"",
                "isRead": false,
                "createdAt": "2026-01-18T04:59:38.123Z",
                "updatedAt": "2026-01-18T05:00:00.000Z",
                "mediaUrl": null,
                "mediaType": null,
                "mediaName": null,
                "mediaSize": null,
                "mediaThumbnail": null,
            })
        );
        // The text, keys in the table's order.
        assert_eq!(
            MessageJson(&model()).to_string(),
            concat!(
                r#"{"id":"cmkj2x1ab0000ab12cd34ef56","connectionId":"conn1","senderId":"user1","#,
                r#""receiverId":"user2","content":"hello \"there\"","isRead":false,"#,
                r#""createdAt":"2026-01-18T04:59:38.123Z","updatedAt":"2026-01-18T05:00:00.000Z","#,
                r#""mediaUrl":null,"mediaType":null,"mediaName":null,"mediaSize":null,"#,
                r#""mediaThumbnail":null}"#
            )
        );
        assert_eq!(v.as_object().map(|o| o.len()), Some(13));
    }

    #[test]
    fn media_message() {
        let m = Model {
            content: String::new(),
            is_read: true,
            media_url: Some("https://cdn.example.com/a.png".into()),
            media_type: Some("image".into()),
            media_name: Some("a.png".into()),
            media_size: Some(2_147_483_647),
            media_thumbnail: Some("https://cdn.example.com/t.png".into()),
            ..model()
        };
        let v = message_json(&m);
        assert_eq!(v["mediaUrl"], "https://cdn.example.com/a.png");
        assert_eq!(v["mediaType"], "image");
        assert_eq!(v["mediaName"], "a.png");
        assert_eq!(v["mediaSize"], json!(2_147_483_647));
        assert!(v["mediaSize"].is_number());
        assert_eq!(v["mediaThumbnail"], "https://cdn.example.com/t.png");
        assert_eq!(v["isRead"], true);
        assert_eq!(v["content"], "");
    }

    #[test]
    fn iso_millis_pads_and_truncates() {
        assert_eq!(iso_millis(&at(0, 0, 0, 0)), "2026-01-18T00:00:00.000Z");
        assert_eq!(
            iso_millis(&at(4, 5, 6, 7_000_000)),
            "2026-01-18T04:05:06.007Z"
        );
        assert_eq!(
            iso_millis(&at(23, 59, 59, 999_999_999)),
            "2026-01-18T23:59:59.999Z"
        );
        assert_eq!(iso_millis(&at(1, 2, 3, 999)), "2026-01-18T01:02:03.000Z");
        let old = NaiveDate::from_ymd_opt(999, 12, 31)
            .and_then(|d| d.and_hms_milli_opt(1, 2, 3, 40))
            .unwrap();
        assert_eq!(iso_millis(&old), "0999-12-31T01:02:03.040Z");
    }
}
