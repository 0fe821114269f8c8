//! `Sparse<T>`: a group of settings that is nearly always at its defaults, kept as a pointer
//! that is null until something is set.
//!
//! A `Job` carries every stanza Upstart and uprise know, and most job files set few of them:
//! a thousand jobs of `start on` plus `exec` held 1.2 KB each, two thirds of it defaults. The
//! rarely set stanzas are grouped (about the job, the process context, the stop and reload
//! behaviour, uprise's extensions) and each group is a `Sparse`: reading an unset group reads
//! one shared static default, writing allocates the group. A run-time instance keeps its
//! rarely used parts the same way (`runtime::jobs::Rare`).
//!
//! It serializes as the group itself (with `#[serde(flatten)]`, the job's JSON stays flat),
//! compares by value (an unset group equals a set one that holds the defaults), and a group
//! read back equal to its defaults is kept unset.

use std::fmt;
use std::ops::{Deref, DerefMut};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A type with a shared, static value of its defaults.
pub trait Empty: Default + 'static {
    /// The defaults, equal to `Self::default()`.
    fn empty() -> &'static Self;
}

/// Implements [`Empty`] for each `Type => value`, the value a constant expression of the
/// type's defaults kept in a static of its own.
macro_rules! empty {
    ($($ty:ty => $value:expr),+ $(,)?) => {
        $(
            impl $crate::model::sparse::Empty for $ty {
                fn empty() -> &'static $ty {
                    static EMPTY: $ty = $value;
                    &EMPTY
                }
            }
        )+
    };
}
pub(crate) use empty;

pub struct Sparse<T: Empty>(Option<Box<T>>);

impl<T: Empty> Sparse<T> {
    /// True when the group was never written (it then reads as its defaults).
    pub fn is_unset(&self) -> bool {
        self.0.is_none()
    }

    /// The group for changing, if it was ever written; `None` makes nothing (for clearing a
    /// field, which an unset group already reads as clear).
    pub fn if_set(&mut self) -> Option<&mut T> {
        self.0.as_deref_mut()
    }
}

impl<T: Empty> Default for Sparse<T> {
    fn default() -> Self {
        Sparse(None)
    }
}

impl<T: Empty> Deref for Sparse<T> {
    type Target = T;

    fn deref(&self) -> &T {
        match &self.0 {
            Some(group) => group,
            None => T::empty(),
        }
    }
}

impl<T: Empty> DerefMut for Sparse<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.0.get_or_insert_with(Box::default)
    }
}

impl<T: Empty + Clone> Clone for Sparse<T> {
    fn clone(&self) -> Self {
        Sparse(self.0.clone())
    }
}

impl<T: Empty + PartialEq> PartialEq for Sparse<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: Empty + fmt::Debug> fmt::Debug for Sparse<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

impl<T: Empty + Serialize> Serialize for Sparse<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(serializer)
    }
}

impl<'de, T: Empty + PartialEq + Deserialize<'de>> Deserialize<'de> for Sparse<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = T::deserialize(deserializer)?;
        Ok(if value == *T::empty() {
            Sparse(None)
        } else {
            Sparse(Some(Box::new(value)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Group {
        name: Option<String>,
        count: u32,
    }

    impl Default for Group {
        fn default() -> Self {
            Group { name: None, count: 7 }
        }
    }

    empty! {
        Group => Group { name: None, count: 7 },
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Outer {
        first: u8,
        #[serde(flatten)]
        group: Sparse<Group>,
    }

    #[test]
    fn an_unset_group_reads_its_defaults_and_a_write_sets_it() {
        let mut group: Sparse<Group> = Sparse::default();
        assert!(group.is_unset());
        assert_eq!(group.count, 7);
        assert_eq!(*group, Group::default());
        group.name = Some("x".into());
        assert!(!group.is_unset());
        assert_eq!((group.name.as_deref(), group.count), (Some("x"), 7));
        // Value equality: set to the defaults equals unset.
        let mut reset = group.clone();
        reset.name = None;
        assert_eq!(reset, Sparse::default());
        assert_ne!(group, Sparse::default());
    }

    #[test]
    fn it_serializes_flat_and_reads_back_unset_when_at_its_defaults() {
        let mut outer = Outer {
            first: 1,
            group: Sparse::default(),
        };
        let json = serde_json::to_string(&outer).unwrap();
        assert_eq!(json, r#"{"first":1,"name":null,"count":7}"#);
        let back: Outer = serde_json::from_str(&json).unwrap();
        assert!(back.group.is_unset());
        outer.group.count = 3;
        let json = serde_json::to_string(&outer).unwrap();
        assert_eq!(json, r#"{"first":1,"name":null,"count":3}"#);
        let back: Outer = serde_json::from_str(&json).unwrap();
        assert_eq!(back, outer);
        assert!(!back.group.is_unset());
    }
}
