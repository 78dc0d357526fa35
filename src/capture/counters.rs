//! `counters!`: declares a struct of named `u64` counters once, so the
//! struct, its `merge` and its `entries` cannot drift apart.
//!
//! It lives in the lowest stage that counts (decode) so every later stage
//! (the engine's counters) uses the same macro instead of a copy. It owns
//! no counters itself and must not do anything but declare: counting,
//! summing across workers and printing are the callers' business.
//!
//! Each counter is written `field => "summary.name",` with its doc comment;
//! `entries` lists the `(name, value)` pairs in declaration order, which is
//! the order the summary prints them in. An optional `with { field: Type, }`
//! block adds fields that are not plain counters (a bounded table, say):
//! their type has `Default`, `Clone`, `Eq` and a `merge(&mut self, &Self)`,
//! which `merge` calls; `entries` leaves them out.

/// `counters! { /// doc \n pub struct Name { /// doc \n field => "name", ... } [with { field: Type, }] }`
macro_rules! counters {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $($(#[doc = $doc:literal])* $field:ident => $label:literal,)*
        }
        $(with {
            $($(#[doc = $xdoc:literal])* $xfield:ident: $xty:ty,)*
        })?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        $vis struct $name {
            $($(#[doc = $doc])* pub $field: u64,)*
            $($($(#[doc = $xdoc])* pub $xfield: $xty,)*)?
        }

        impl $name {
            /// Adds `other`'s counts to these (saturating: a summary must
            /// never wrap), and merges the `with` tables.
            pub fn merge(&mut self, other: &$name) {
                $(self.$field = self.$field.saturating_add(other.$field);)*
                $($(self.$xfield.merge(&other.$xfield);)*)?
            }
            /// `(name, value)` pairs for the summary, in a fixed order.
            pub fn entries(&self) -> Vec<(&'static str, u64)> {
                vec![$(($label, self.$field),)*]
            }
        }
    };
}

pub(crate) use counters;
