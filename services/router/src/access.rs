//! Who may do what in a room: the room state cache and the authorization rules.
//!
//! Every request a router serves is authorized here, against the room's state as this router
//! knows it: open rooms (never created) let any user read and send; public rooms let anyone
//! who is not banned read, and members send; private and direct rooms admit members only.
//! Moderation needs a role above the target's.
//!
//! The cache is owned by the router. Only the room's actor changes a room's state (after its
//! entry is durable), and it updates the cache as it writes the store, so the owner's cache is
//! exact. The whole cache is dropped whenever the ring changes (a room may have had another
//! owner meanwhile), a room's entry when its actor loads it, and every entry after [`TTL`].

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::ownership::Ownership;
use chorus_core::{
    Role, RoomId, UserId, Visibility,
    router::RouterError,
    state::{MemberRecord, RoomInfo, RoomStateStore},
    time::now_ms,
};

/// How long cached room state is trusted without a reload.
pub(crate) const TTL: Duration = Duration::from_secs(30);
/// Rooms cached before the cache starts over.
const MAX_ROOMS: usize = 10_000;
/// Member records cached per room before that room's records start over.
const MAX_MEMBERS: usize = 20_000;

#[derive(Default)]
struct CachedRoom {
    loaded: Option<Instant>,
    info: Option<RoomInfo>,
    /// `None` value: known not to have a record.
    members: HashMap<UserId, Option<MemberRecord>>,
}

/// The room state cache (see the module docs).
pub(crate) struct Access {
    state: Arc<dyn RoomStateStore>,
    ownership: Arc<dyn Ownership>,
    /// The cached rooms, and the ownership version they were read under.
    rooms: Mutex<(u64, HashMap<RoomId, CachedRoom>)>,
}

/// A room's state as far as one request needs it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct View {
    /// `None`: an open room.
    pub(crate) visibility: Option<Visibility>,
    pub(crate) record: Option<MemberRecord>,
}

impl View {
    pub(crate) fn role(&self) -> Option<Role> {
        self.record.and_then(|r| r.role)
    }

    pub(crate) fn banned(&self) -> bool {
        self.record.is_some_and(|r| r.banned)
    }

    /// May read (join, history, presence, members).
    pub(crate) fn check_read(&self) -> Result<(), RouterError> {
        match self.visibility {
            None => Ok(()),
            Some(_) if self.banned() => Err(forbidden("banned from this room")),
            Some(Visibility::Public) => Ok(()),
            Some(Visibility::Private | Visibility::Direct) if self.role().is_some() => Ok(()),
            Some(_) => Err(forbidden("this room is private")),
        }
    }

    /// May add entries (messages, edits, deletes, events).
    pub(crate) fn check_send(&self) -> Result<(), RouterError> {
        if self.visibility.is_none() {
            return Ok(());
        }
        self.check_read()?;
        if self.role().is_none() {
            return Err(forbidden("join the room before sending to it"));
        }
        let muted_until = self.record.map_or(0, |r| r.muted_until);
        if muted_until > now_ms() {
            return Err(forbidden("muted in this room"));
        }
        Ok(())
    }

    /// May moderate a user whose standing is `target`.
    pub(crate) fn check_moderate(&self, target: &View) -> Result<(), RouterError> {
        if self.visibility.is_none() {
            return Err(forbidden("open rooms have no moderators"));
        }
        if self.visibility == Some(Visibility::Direct) {
            return Err(forbidden("direct rooms have no moderators"));
        }
        let Some(role) = self.role().filter(|r| r.moderates()) else {
            return Err(forbidden("only owners and moderators may do this"));
        };
        if target.role().is_some_and(|t| t <= role) {
            return Err(forbidden("the target's role is not below yours"));
        }
        Ok(())
    }
}

pub(crate) fn forbidden(why: &str) -> RouterError {
    RouterError::Forbidden(why.to_owned())
}

impl Access {
    pub(crate) fn new(state: Arc<dyn RoomStateStore>, ownership: Arc<dyn Ownership>) -> Self {
        Access {
            rooms: Mutex::new((ownership.version(), HashMap::new())),
            state,
            ownership,
        }
    }

    pub(crate) fn store(&self) -> &Arc<dyn RoomStateStore> {
        &self.state
    }

    fn cached<T>(&self, room: &RoomId, f: impl FnOnce(&mut CachedRoom) -> T) -> T {
        let version = self.ownership.version();
        let mut guard = self
            .rooms
            .lock()
            .expect("access cache lock is never poisoned");
        let (seen, rooms) = &mut *guard;
        if *seen != version || (rooms.len() >= MAX_ROOMS && !rooms.contains_key(room)) {
            *seen = version;
            rooms.clear();
        }
        let entry = rooms.entry(room.clone()).or_default();
        if entry.loaded.is_some_and(|t| t.elapsed() > TTL) {
            *entry = CachedRoom::default();
        }
        f(entry)
    }

    /// The room's info, from the cache or the store.
    pub(crate) async fn info(&self, room: &RoomId) -> Result<Option<RoomInfo>, RouterError> {
        if let Some(info) = self.cached(room, |c| c.loaded.map(|_| c.info.clone())) {
            return Ok(info);
        }
        let info = self.state.room(room).await?;
        self.cached(room, |c| {
            if c.loaded.is_none() {
                c.loaded = Some(Instant::now());
                c.info = info.clone();
            }
        });
        Ok(info)
    }

    /// `user`'s record in `room`, from the cache or the store.
    pub(crate) async fn record(
        &self,
        room: &RoomId,
        user: &UserId,
    ) -> Result<Option<MemberRecord>, RouterError> {
        if let Some(r) = self.cached(room, |c| c.members.get(user).copied()) {
            return Ok(r);
        }
        let record = self.state.member(room, user).await?;
        self.cached(room, |c| {
            if c.members.len() >= MAX_MEMBERS {
                c.members.clear();
            }
            c.members.entry(user.clone()).or_insert(record);
        });
        Ok(record)
    }

    /// What `user` may do in `room`.
    pub(crate) async fn view(&self, room: &RoomId, user: &UserId) -> Result<View, RouterError> {
        let info = self.info(room).await?;
        let visibility = info.as_ref().and_then(|i| created(i.visibility));
        let record = match visibility {
            None => None,
            Some(_) => self.record(room, user).await?,
        };
        Ok(View { visibility, record })
    }

    /// Records what the room's actor just wrote to the store.
    pub(crate) fn wrote_info(&self, room: &RoomId, info: &RoomInfo) {
        self.cached(room, |c| {
            c.loaded.get_or_insert_with(Instant::now);
            c.info = Some(info.clone());
        });
    }

    pub(crate) fn wrote_members(&self, room: &RoomId, members: &[(UserId, MemberRecord)]) {
        self.cached(room, |c| {
            for (u, r) in members {
                c.members.insert(u.clone(), Some(*r));
            }
        });
    }

    /// Forgets the room (its actor is loading it).
    pub(crate) fn forget(&self, room: &RoomId) {
        self.rooms
            .lock()
            .expect("access cache lock is never poisoned")
            .1
            .remove(room);
    }
}

/// The visibility of a created room; `None` for the bookkeeping record of an open room.
pub(crate) fn created(v: Visibility) -> Option<Visibility> {
    match v {
        Visibility::Open => None,
        v => Some(v),
    }
}
