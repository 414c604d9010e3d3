//! The tests' one world: Alice, a user in every status of connection with her, and a
//! stranger, on a database of the kind asked for, with the app serving it
//! ([`world`], [`world_with`]) — or the chat's actors on their own (`tests/actors/`, on
//! [`People::seed`]).

use std::ops::Deref;

use super::db::{Kind, TestDb};
use super::{eventually, spawn_app_on, TestApp};

/// The users and their connections. Ids are unique per test (the database may be shared).
pub struct People {
    pub alice: String,
    /// Alice's peer: their connection [`People::ab`] is ACTIVE.
    pub bob: String,
    /// A stranger: no connection with anyone.
    pub carol: String,
    /// Alice's connection with her is ENDED ([`People::ad_ended`]).
    pub dave: String,
    /// Alice's connection with her is BLOCKED ([`People::ae_blocked`]).
    pub erin: String,
    /// Alice's connection with him is PENDING ([`People::af_pending`]).
    pub frank: String,
    /// Alice and Bob, ACTIVE.
    pub ab: String,
    /// Alice and Dave, ENDED.
    pub ad_ended: String,
    /// Alice and Erin, BLOCKED.
    pub ae_blocked: String,
    /// Alice and Frank, PENDING.
    pub af_pending: String,
}

impl People {
    /// Inserts the users and their connections into `db` (its tables made already).
    pub async fn seed(db: &TestDb) -> People {
        let alice = db.user("alice").await;
        let bob = db.user("bob").await;
        let carol = db.user("carol").await;
        let dave = db.user("dave").await;
        let erin = db.user("erin").await;
        let frank = db.user("frank").await;
        let ab = db.connection(&alice, &bob, "ACTIVE").await;
        let ad_ended = db.connection(&alice, &dave, "ENDED").await;
        let ae_blocked = db.connection(&alice, &erin, "BLOCKED").await;
        let af_pending = db.connection(&alice, &frank, "PENDING").await;
        People {
            alice,
            bob,
            carol,
            dave,
            erin,
            frank,
            ab,
            ad_ended,
            ae_blocked,
            af_pending,
        }
    }

    /// Alice's other users and connections, one per status that is not ACTIVE:
    /// `(user, connection, status)` for PENDING, ENDED and BLOCKED.
    pub fn not_active(&self) -> [(&str, &str, &'static str); 3] {
        [
            (&self.frank, &self.af_pending, "PENDING"),
            (&self.dave, &self.ad_ended, "ENDED"),
            (&self.erin, &self.ae_blocked, "BLOCKED"),
        ]
    }
}

/// [`People`] on a database, with the app serving it. Reads as its people (`w.alice`,
/// `w.ab`).
pub struct World {
    pub db: TestDb,
    pub app: TestApp,
    pub people: People,
}

impl Deref for World {
    type Target = People;

    fn deref(&self) -> &People {
        &self.people
    }
}

impl World {
    /// Waits until the chat's user registry has taken the sockets that connected: each
    /// `(user, n)` has `"connectionCount" = n` (written once the registry took them).
    pub async fn registered(&self, sockets: &[(&str, i32)]) {
        for &(user, n) in sockets {
            let what = format!("{n} socket(s) of {user} registered");
            eventually(&what, async || self.db.presence(user).await == (true, n)).await;
        }
    }
}

/// The world on a database of `kind`, the app with the test settings.
pub async fn world(kind: Kind) -> World {
    world_with(kind, &[]).await
}

/// The world with the test settings plus `overrides` (`COURIER__…` variables).
pub async fn world_with(kind: Kind, overrides: &[(&str, &str)]) -> World {
    let db = TestDb::new(kind).await;
    // The app migrates (or, on the Prisma layout, leaves the tables alone) at build.
    let app = spawn_app_on(&db.url, overrides).await;
    let people = People::seed(&db).await;
    World { db, app, people }
}
