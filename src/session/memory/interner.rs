//! Strings shared between the memory store's signed slots: the few
//! distinct user agents, client versions and key ids are kept once, not once
//! per session. Bounded in count and length, so odd clients cannot grow it.

use std::sync::{Arc, Mutex};

use super::lock;

/// Distinct strings shared between slots; longer or further ones are
/// stored per slot.
const INTERNED: usize = 4096;
const INTERNED_LEN: usize = 256;

/// Shares the few distinct user agents, versions and key ids between
/// slots; bounded, so odd clients cannot grow it.
#[derive(Default)]
pub(super) struct Interner(Mutex<std::collections::HashSet<Arc<str>>>);

impl Interner {
    pub(super) fn get(&self, text: &str) -> Arc<str> {
        if text.len() > INTERNED_LEN {
            return Arc::from(text);
        }
        let mut set = lock(&self.0);
        if let Some(shared) = set.get(text) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(text);
        if set.len() < INTERNED {
            set.insert(shared.clone());
        }
        shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_shared_up_to_a_bound() {
        let strings = Interner::default();
        let a = strings.get("OpenTelemetry .NET");
        let b = strings.get("OpenTelemetry .NET");
        assert!(Arc::ptr_eq(&a, &b));
        let long = "x".repeat(INTERNED_LEN + 1);
        assert!(!Arc::ptr_eq(&strings.get(&long), &strings.get(&long)));
    }
}
