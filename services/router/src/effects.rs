//! What each new log entry is allowed to be, and what it changes besides the log.
//!
//! An entry is admitted against the room's state at the point of the log where it lands,
//! including the effects of the entries before it in the same batch. Its effects are the
//! derived state it changes: the stored current state of the message an edit or delete acts
//! on, member records, and the room's info on creation. [`Effects`] gathers a batch's effects
//! so the room actor can write them after the append (ADR 0006).
//!
//! [`Working::apply`] is the single definition of an entry's effect: admission runs it after
//! validating, and recovery runs it again on entries whose effects may not have been written.

use std::collections::BTreeMap;

use chorus_core::{
    DM_PREFIX, Kind, MemberAction, MemberChange, Message, Role, RoomId, UserId, Visibility,
    dm_room,
    router::{RouterError, validate_event},
    state::{MemberRecord, RoomInfo},
    store::ReadRange,
    time::now_ms,
};

use crate::{
    Shared,
    access::{View, created, forbidden},
    filter::FilterInput,
};

/// Edits one message may have.
pub(crate) const MAX_EDITS: usize = 100;
/// Members a room may be created with.
pub(crate) const MAX_INITIAL_MEMBERS: usize = 100;

/// A batch's changes to derived state, in the order they must be visible.
#[derive(Default)]
pub(crate) struct Effects {
    /// Messages whose current state changed, by seq.
    pub(crate) amended: BTreeMap<u64, Message>,
    /// Member records that changed.
    pub(crate) members: BTreeMap<UserId, MemberRecord>,
    /// The room's info, when it changed (creation).
    pub(crate) info: Option<RoomInfo>,
}

impl Effects {
    pub(crate) fn is_empty(&self) -> bool {
        self.amended.is_empty() && self.members.is_empty() && self.info.is_none()
    }
}

/// The room's state while a batch is admitted: what the store and cache hold, plus the
/// effects of the entries admitted so far.
pub(crate) struct Working<'a> {
    shared: &'a Shared,
    room: &'a RoomId,
    /// The room's info as stored (before this batch).
    pub(crate) info: Option<RoomInfo>,
    pub(crate) effects: Effects,
    /// The room's last durable seq when the batch started. Edits and deletes act only on
    /// durable messages: a client learns a seq from its ack, after the batch.
    durable: u64,
}

/// What admission decided for a create of a direct room that exists already: answer with the
/// creating entry, as a duplicate.
pub(crate) struct AlreadyOpen;

impl<'a> Working<'a> {
    pub(crate) fn new(
        shared: &'a Shared,
        room: &'a RoomId,
        info: Option<RoomInfo>,
        durable: u64,
    ) -> Self {
        Working {
            shared,
            room,
            info,
            effects: Effects::default(),
            durable,
        }
    }

    fn visibility(&self) -> Option<Visibility> {
        self.effects
            .info
            .as_ref()
            .or(self.info.as_ref())
            .and_then(|i| created(i.visibility))
    }

    async fn record(&self, user: &UserId) -> Result<Option<MemberRecord>, RouterError> {
        if let Some(r) = self.effects.members.get(user) {
            return Ok(Some(*r));
        }
        if self.visibility().is_none() {
            return Ok(None);
        }
        self.shared.access.record(self.room, user).await
    }

    async fn view(&self, user: &UserId) -> Result<View, RouterError> {
        Ok(View {
            visibility: self.visibility(),
            record: self.record(user).await?,
        })
    }

    /// The current state of durable message `seq` (before `limit`, the seq being admitted).
    async fn target(&self, seq: u64, limit: u64) -> Result<Message, RouterError> {
        if seq == 0 || seq >= limit || seq > self.durable {
            return Err(RouterError::NotFound(format!(
                "no message {seq} in this room"
            )));
        }
        if let Some(m) = self.effects.amended.get(&seq) {
            return Ok(m.clone());
        }
        let found = self
            .shared
            .store
            .read(self.room, ReadRange::After(seq - 1), 1)
            .await?;
        found
            .into_iter()
            .find(|m| m.seq == seq)
            .ok_or_else(|| RouterError::NotFound(format!("no message {seq} in this room")))
    }

    /// Validates and authorizes `m` (seq, ts and count already assigned) and records its
    /// effects. On refusal nothing is recorded.
    pub(crate) async fn admit(
        &mut self,
        m: &mut Message,
    ) -> Result<Option<AlreadyOpen>, RouterError> {
        let ext = &m.ext;
        if ext.edited_ts.is_some() || ext.deleted || !ext.edits.is_empty() {
            return Err(RouterError::BadRequest(
                "edited_ts, deleted and edits are state, not input".into(),
            ));
        }
        let check_extras = |allowed: &[&str]| -> Result<(), RouterError> {
            let present = [
                ("reply_to", ext.reply_to.is_some()),
                ("target", ext.target.is_some()),
                ("attachments", !ext.attachments.is_empty()),
                ("event", ext.event.is_some()),
                ("data", ext.data.is_some()),
                ("member", ext.member.is_some()),
            ];
            match present
                .iter()
                .find(|(name, set)| *set && !allowed.contains(name))
            {
                Some((name, _)) => Err(RouterError::BadRequest(format!(
                    "{name} is not allowed on a {} entry",
                    kind_name(ext.kind)
                ))),
                None => Ok(()),
            }
        };
        let filter =
            |body: &str, attachments| self.shared.filter.check(FilterInput { body, attachments });
        match ext.kind {
            Kind::Text => {
                check_extras(&["reply_to", "attachments"])?;
                self.view(&m.from).await?.check_send()?;
                filter(&m.body, &ext.attachments)?;
                if let Some(r) = ext.reply_to
                    && (r == 0 || r >= m.seq)
                {
                    return Err(RouterError::NotFound(format!("no message {r} to reply to")));
                }
                if m.body.is_empty() && ext.attachments.is_empty() {
                    return Err(RouterError::BadRequest(
                        "a message needs a body or an attachment".into(),
                    ));
                }
            }
            Kind::Edit => {
                check_extras(&["target"])?;
                self.view(&m.from).await?.check_send()?;
                filter(&m.body, &[])?;
                let target = self.edit_target(m).await?;
                if target.from != m.from {
                    return Err(forbidden("only the sender may edit a message"));
                }
                if target.ext.edits.len() >= MAX_EDITS {
                    return Err(RouterError::LimitExceeded(format!(
                        "a message may be edited at most {MAX_EDITS} times"
                    )));
                }
            }
            Kind::Delete => {
                check_extras(&["target"])?;
                if !m.body.is_empty() {
                    return Err(RouterError::BadRequest("a delete has no body".into()));
                }
                let target = self.edit_target(m).await?;
                let me = self.view(&m.from).await?;
                if target.from == m.from {
                    me.check_read()?;
                    if me.visibility.is_some() && me.role().is_none() {
                        return Err(forbidden("only members may delete their messages"));
                    }
                } else {
                    let author = self.view(&target.from).await?;
                    me.check_moderate(&author).map_err(|_| {
                        forbidden("only the sender or a moderator may delete a message")
                    })?;
                }
            }
            Kind::Event => {
                check_extras(&["event", "data"])?;
                self.view(&m.from).await?.check_send()?;
                if !m.body.is_empty() {
                    return Err(RouterError::BadRequest("an event has no body".into()));
                }
                let (Some(event), Some(data)) = (&ext.event, &ext.data) else {
                    return Err(RouterError::BadRequest(
                        "an event needs event and data".into(),
                    ));
                };
                validate_event(event, data.as_str())?;
            }
            Kind::Member => {
                check_extras(&["member"])?;
                let Some(change) = &ext.member else {
                    return Err(RouterError::BadRequest(
                        "a member entry needs member".into(),
                    ));
                };
                if self.admit_member(m, change).await? {
                    return Ok(Some(AlreadyOpen));
                }
                let revoke = change.action.revokes_delivery(self.visibility().or(
                    // a create makes the room what it says
                    change.visibility,
                ));
                if let Some(c) = m.ext.member.as_mut() {
                    c.revoke = revoke;
                }
            }
        }
        self.apply(m).await?;
        Ok(None)
    }

    /// The message an edit or delete acts on: a live text or event entry.
    async fn edit_target(&self, m: &Message) -> Result<Message, RouterError> {
        let Some(seq) = m.ext.target else {
            return Err(RouterError::BadRequest(format!(
                "a {} needs a target",
                kind_name(m.ext.kind)
            )));
        };
        let target = self.target(seq, m.seq).await?;
        let editable = match m.ext.kind {
            Kind::Edit => target.ext.kind == Kind::Text,
            _ => target.ext.kind.counts_as_unread(),
        };
        if !editable {
            return Err(RouterError::BadRequest(format!(
                "message {seq} is not a message that can be changed"
            )));
        }
        if target.ext.deleted {
            return Err(RouterError::NotFound(format!("message {seq} was deleted")));
        }
        Ok(target)
    }

    /// Validates a membership change. Returns `true` for the create of a direct room that
    /// exists already.
    async fn admit_member(&self, m: &Message, c: &MemberChange) -> Result<bool, RouterError> {
        fn bad<T>(why: &str) -> Result<T, RouterError> {
            Err(RouterError::BadRequest(why.to_owned()))
        }
        let visibility = self.visibility();
        if c.action != MemberAction::Create && (c.visibility.is_some() || !c.members.is_empty()) {
            return bad("visibility and members are only for create");
        }
        if !matches!(
            c.action,
            MemberAction::Invite | MemberAction::SetRole | MemberAction::Create
        ) && c.role.is_some()
        {
            return bad("role is only for invite and set_role");
        }
        if c.action != MemberAction::Mute && c.until.is_some() {
            return bad("until is only for mute");
        }
        if c.revoke {
            return bad("revoke is set by the router");
        }
        if c.user == m.from
            && matches!(
                c.action,
                MemberAction::Remove
                    | MemberAction::Ban
                    | MemberAction::Unban
                    | MemberAction::Mute
                    | MemberAction::Unmute
                    | MemberAction::Disconnect
            )
        {
            return bad("moderation does not apply to yourself");
        }
        let me = self.view(&m.from).await?;
        let target = self.view(&c.user).await?;
        let self_only = |ok: bool| {
            if ok {
                Ok(())
            } else {
                bad("user must be yourself")
            }
        };
        let in_created = || match visibility {
            None => Err(RouterError::NotFound("this room was not created".into())),
            Some(Visibility::Direct) => Err(forbidden("direct rooms have fixed members")),
            Some(_) => Ok(()),
        };
        match c.action {
            MemberAction::Create => {
                self_only(c.user == m.from)?;
                if c.role.is_some() {
                    return bad("the creator is the owner");
                }
                let wanted = c.visibility.unwrap_or(Visibility::Public);
                let is_dm_name = self.room.as_str().starts_with(DM_PREFIX);
                if visibility == Some(Visibility::Direct) && wanted == Visibility::Direct {
                    // Opening a direct room again: fine for its two users.
                    target.check_read()?;
                    return Ok(true);
                }
                if visibility.is_some() || m.seq != 1 {
                    return Err(RouterError::Conflict("the room exists already".into()));
                }
                match wanted {
                    Visibility::Direct => {
                        let [other] = c.members.as_slice() else {
                            return bad("a direct room has exactly one other member");
                        };
                        if dm_room(&m.from, other) != *self.room {
                            return bad("this is not the direct room of these users");
                        }
                    }
                    Visibility::Open => return bad("visibility must be public or private"),
                    _ if is_dm_name => {
                        return bad("room names starting with dm: are for direct rooms");
                    }
                    _ if c.members.len() > MAX_INITIAL_MEMBERS => {
                        return Err(RouterError::LimitExceeded(format!(
                            "a room is created with at most {MAX_INITIAL_MEMBERS} members"
                        )));
                    }
                    _ => {}
                }
            }
            MemberAction::Join => {
                self_only(c.user == m.from)?;
                if visibility != Some(Visibility::Public) {
                    return Err(forbidden(
                        "only public rooms can be joined without an invite",
                    ));
                }
                target.check_read()?;
                if target.role().is_some() {
                    return Err(RouterError::Conflict("already a member".into()));
                }
            }
            MemberAction::Invite => {
                in_created()?;
                match me.role() {
                    Some(r) if r.moderates() => {}
                    _ => return Err(forbidden("only owners and moderators invite")),
                }
                if c.role.is_some_and(|r| r != Role::Member) && me.role() != Some(Role::Owner) {
                    return Err(forbidden("only owners give roles above member"));
                }
                if target.banned() {
                    return Err(forbidden("the user is banned; unban first"));
                }
                if target.role().is_some() {
                    return Err(RouterError::Conflict("already a member".into()));
                }
            }
            MemberAction::Leave => {
                in_created()?;
                self_only(c.user == m.from)?;
                if me.role().is_none() {
                    return Err(RouterError::NotFound("not a member".into()));
                }
            }
            MemberAction::SetRole => {
                in_created()?;
                if me.role() != Some(Role::Owner) {
                    return Err(forbidden("only owners change roles"));
                }
                if c.user == m.from {
                    return bad("owners do not change their own role");
                }
                if c.role.is_none() {
                    return bad("set_role needs a role");
                }
                if target.role().is_none() {
                    return Err(RouterError::NotFound("not a member".into()));
                }
            }
            MemberAction::Remove => {
                me.check_moderate(&target)?;
                if target.role().is_none() {
                    return Err(RouterError::NotFound("not a member".into()));
                }
            }
            MemberAction::Mute => {
                me.check_moderate(&target)?;
                if c.until.is_none_or(|u| u <= now_ms()) {
                    return bad("mute needs an end in the future");
                }
            }
            MemberAction::Unmute | MemberAction::Ban | MemberAction::Disconnect => {
                me.check_moderate(&target)?;
            }
            MemberAction::Unban => {
                me.check_moderate(&target)?;
                if !target.banned() {
                    return Err(RouterError::NotFound("not banned".into()));
                }
            }
        }
        Ok(false)
    }

    /// Records the effect of the durable (or about to be) entry `m`. Idempotent: applying an
    /// entry twice leaves the same state.
    pub(crate) async fn apply(&mut self, m: &Message) -> Result<(), RouterError> {
        match m.ext.kind {
            Kind::Text | Kind::Event => {}
            Kind::Edit => {
                let Some(seq) = m.ext.target else {
                    return Ok(());
                };
                let mut target = self.target(seq, m.seq).await?;
                target.body = m.body.clone();
                target.ext.edited_ts = Some(target.ext.edited_ts.unwrap_or(0).max(m.ts));
                if !target.ext.edits.contains(&m.seq) {
                    target.ext.edits.push(m.seq);
                }
                self.effects.amended.insert(seq, target);
            }
            Kind::Delete => {
                let Some(seq) = m.ext.target else {
                    return Ok(());
                };
                let mut target = self.target(seq, m.seq).await?;
                target.body.clear();
                target.ext.attachments.clear();
                target.ext.data = None;
                target.ext.deleted = true;
                for edit in target.ext.edits.clone() {
                    let mut e = self.target(edit, m.seq).await?;
                    e.body.clear();
                    self.effects.amended.insert(edit, e);
                }
                self.effects.amended.insert(seq, target);
            }
            Kind::Member => {
                let Some(c) = &m.ext.member else {
                    return Ok(());
                };
                if c.action == MemberAction::Create {
                    self.apply_create(m, c);
                    return Ok(());
                }
                let mut record = self.record(&c.user).await?.unwrap_or_default();
                match c.action {
                    MemberAction::Create | MemberAction::Disconnect => {}
                    MemberAction::Join => record.role = Some(Role::Member),
                    MemberAction::Invite => {
                        record.role = Some(c.role.unwrap_or(Role::Member));
                        record.banned = false;
                    }
                    MemberAction::Leave | MemberAction::Remove => record.role = None,
                    MemberAction::SetRole => record.role = c.role.or(record.role),
                    MemberAction::Mute => record.muted_until = c.until.unwrap_or(0),
                    MemberAction::Unmute => record.muted_until = 0,
                    MemberAction::Ban => {
                        record.role = None;
                        record.banned = true;
                    }
                    MemberAction::Unban => record.banned = false,
                }
                self.effects.members.insert(c.user.clone(), record);
            }
        }
        Ok(())
    }

    fn apply_create(&mut self, m: &Message, c: &MemberChange) {
        let visibility = c.visibility.unwrap_or(Visibility::Public);
        // Two distinct users; a note-to-self room has one.
        let creator_role = if visibility == Visibility::Direct {
            Role::Member
        } else {
            Role::Owner
        };
        self.effects.info = Some(RoomInfo {
            visibility,
            created_by: m.from.clone(),
            created_ts: m.ts,
            pending_from: 0,
        });
        let member = |role| MemberRecord {
            role: Some(role),
            banned: false,
            muted_until: 0,
        };
        self.effects
            .members
            .insert(m.from.clone(), member(creator_role));
        for u in &c.members {
            if *u != m.from {
                self.effects.members.insert(u.clone(), member(Role::Member));
            }
        }
    }
}

pub(crate) fn kind_name(k: Kind) -> &'static str {
    k.as_str()
}
