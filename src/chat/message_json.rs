//! The JSON form of a saved message, as the Node server emits it.

use chrono::NaiveDateTime;
use entity::messages::Model;
use serde_json::{json, Value};

/// The saved message as Prisma returns it (and the Node server emits it).
///
/// Exactly the keys `id`, `connectionId`, `senderId`, `receiverId`, `content`, `isRead`,
/// `createdAt`, `updatedAt`, `mediaUrl`, `mediaType`, `mediaName`, `mediaSize` and
/// `mediaThumbnail`; timestamps as [`iso_millis`], absent media fields as `null`.
pub fn message_json(m: &Model) -> Value {
    json!({
        "id": m.id,
        "connectionId": m.connection_id,
        "senderId": m.sender_id,
        "receiverId": m.receiver_id,
        "content": m.content,
        "isRead": m.is_read,
        "createdAt": iso_millis(&m.created_at),
        "updatedAt": iso_millis(&m.updated_at),
        "mediaUrl": m.media_url,
        "mediaType": m.media_type,
        "mediaName": m.media_name,
        "mediaSize": m.media_size,
        "mediaThumbnail": m.media_thumbnail,
    })
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
        // Keys are sorted without `preserve_order`, so the string is deterministic.
        assert_eq!(
            v.to_string(),
            concat!(
                r#"{"connectionId":"conn1","content":"hello \"there\"","#,
                r#""createdAt":"2026-01-18T04:59:38.123Z","id":"cmkj2x1ab0000ab12cd34ef56","#,
                r#""isRead":false,"mediaName":null,"mediaSize":null,"mediaThumbnail":null,"#,
                r#""mediaType":null,"mediaUrl":null,"receiverId":"user2","senderId":"user1","#,
                r#""updatedAt":"2026-01-18T05:00:00.000Z"}"#
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
