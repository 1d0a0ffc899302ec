//! Validated identifiers. A [`RoomId`] or [`UserId`] that exists has passed its syntax check, so
//! code past the protocol edge never re-validates. Both are cheap to clone (`Arc<str>`).

use std::{fmt, sync::Arc};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest room name accepted, in bytes.
pub const MAX_ROOM_LEN: usize = 128;
/// Longest user id accepted, in bytes.
pub const MAX_USER_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
    #[error("{what} is longer than {max} bytes")]
    TooLong { what: &'static str, max: usize },
    #[error("{what} may contain only letters, digits and {allowed}")]
    BadChar {
        what: &'static str,
        allowed: &'static str,
    },
}

fn check(s: &str, what: &'static str, max: usize, extra: &'static str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty { what });
    }
    if s.len() > max {
        return Err(IdError::TooLong { what, max });
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || extra.as_bytes().contains(&b))
    {
        return Err(IdError::BadChar {
            what,
            allowed: extra,
        });
    }
    Ok(())
}

macro_rules! id_type {
    ($name:ident, $what:literal, $max:expr, $extra:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Characters allowed besides ASCII letters and digits.
            pub const EXTRA_CHARS: &'static str = $extra;

            pub fn new(s: &str) -> Result<Self, IdError> {
                check(s, $what, $max, $extra)?;
                Ok(Self(Arc::from(s)))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::new(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    RoomId,
    "room",
    MAX_ROOM_LEN,
    "_-.:@",
    "A room name: 1 to 128 bytes of ASCII letters, digits and `_ - . : @`."
);
id_type!(
    UserId,
    "user",
    MAX_USER_LEN,
    "_-.@",
    "A user id (the token's `sub`): 1 to 64 bytes of ASCII letters, digits and `_ - . @`."
);

/// Prefix of direct-message room names; no other room may use it.
pub const DM_PREFIX: &str = "dm:";

/// The direct-message room of two users, the same whichever of them asks:
/// `dm:<first>:<second>` with the ids in byte order (user ids cannot contain `:`). When that
/// would be longer than [`MAX_ROOM_LEN`], each id is replaced by a 64-bit FNV-1a hash in hex.
pub fn dm_room(a: &UserId, b: &UserId) -> RoomId {
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    let plain = format!("{DM_PREFIX}{first}:{second}");
    let name = if plain.len() <= MAX_ROOM_LEN {
        plain
    } else {
        let h = |u: &UserId| {
            u.as_str().bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
            })
        };
        format!("{DM_PREFIX}{:016x}:{:016x}", h(first), h(second))
    };
    RoomId::new(&name).expect("dm names are built from valid ids within the length limit")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_follow_the_documented_syntax() {
        assert!(RoomId::new("general").is_ok());
        assert!(RoomId::new("team-1.eng:ops@x_y").is_ok());
        assert_eq!(
            RoomId::new("").unwrap_err(),
            IdError::Empty { what: "room" }
        );
        assert!(matches!(
            RoomId::new("has space"),
            Err(IdError::BadChar { .. })
        ));
        assert!(matches!(RoomId::new("é"), Err(IdError::BadChar { .. })));
        assert!(RoomId::new(&"a".repeat(128)).is_ok());
        assert!(matches!(
            RoomId::new(&"a".repeat(129)),
            Err(IdError::TooLong { max: 128, .. })
        ));
    }

    #[test]
    fn user_ids_reject_colons_so_dm_names_stay_unambiguous() {
        assert!(UserId::new("alice@example.com").is_ok());
        assert!(UserId::new("a:b").is_err());
    }

    #[test]
    fn ids_deserialize_with_validation() {
        let r: Result<RoomId, _> = serde_json::from_str("\"bad room\"");
        assert!(r.is_err());
        let r: RoomId = serde_json::from_str("\"general\"").unwrap();
        assert_eq!(r.as_str(), "general");
    }

    #[test]
    fn dm_rooms_are_the_same_from_both_sides_and_always_valid() {
        let (a, b) = (UserId::new("alice").unwrap(), UserId::new("bob").unwrap());
        assert_eq!(dm_room(&a, &b).as_str(), "dm:alice:bob");
        assert_eq!(dm_room(&b, &a), dm_room(&a, &b));
        let (x, y) = (
            UserId::new(&"x".repeat(64)).unwrap(),
            UserId::new(&"y".repeat(64)).unwrap(),
        );
        let long = dm_room(&y, &x);
        assert!(long.as_str().starts_with(DM_PREFIX) && long.as_str().len() <= MAX_ROOM_LEN);
        assert_eq!(long, dm_room(&x, &y));
        assert_ne!(long, dm_room(&x, &x));
    }
}
