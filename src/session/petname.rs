//! A human-readable name derived from a session id (`brave-otter`), for logs
//! and the admin view: easier to say and compare than a GUID, and it does not
//! reveal the id (it is a hash).

use sha2::{Digest, Sha256};

const ADJECTIVES: &[&str] = &[
    "able", "agile", "amber", "bold", "brave", "bright", "brisk", "calm", "clever", "cosmic",
    "crisp", "daring", "deft", "eager", "early", "fair", "fancy", "fast", "fierce", "fond",
    "frank", "gentle", "glad", "golden", "grand", "happy", "hardy", "honest", "humble", "jolly",
    "keen", "kind", "lively", "loyal", "lucid", "lucky", "merry", "mighty", "modest", "noble",
    "patient", "plucky", "polite", "proud", "quick", "quiet", "rapid", "ready", "regal", "robust",
    "rustic", "sharp", "shiny", "silent", "smooth", "snowy", "steady", "sunny", "swift", "tidy",
    "vivid", "warm", "wise", "witty",
];

const ANIMALS: &[&str] = &[
    "badger", "bat", "bear", "beaver", "bison", "boar", "camel", "cat", "cobra", "crane", "crow",
    "deer", "dingo", "dolphin", "dove", "eagle", "eel", "elk", "falcon", "ferret", "finch", "fox",
    "frog", "gecko", "goat", "goose", "hare", "hawk", "heron", "ibis", "jackal", "jay", "koala",
    "lark", "lemur", "lion", "llama", "lynx", "mole", "moose", "mouse", "newt", "otter", "owl",
    "panda", "parrot", "pike", "puma", "quail", "raven", "robin", "seal", "shark", "sloth",
    "snail", "swan", "tapir", "tiger", "toad", "trout", "viper", "walrus", "wolf", "yak",
];

/// `adjective-animal`, stable for a given id.
pub fn pet_name(session_id: &str) -> String {
    let digest = Sha256::digest(session_id.as_bytes());
    let adjective = ADJECTIVES[usize::from(digest[0]) % ADJECTIVES.len()];
    let animal = ANIMALS[usize::from(digest[1]) % ANIMALS.len()];
    format!("{adjective}-{animal}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_spread() {
        let id = "0f8fad5b-d9cb-469f-a165-70867728950e";
        assert_eq!(pet_name(id), pet_name(id));
        let names: std::collections::HashSet<_> = (0..200)
            .map(|n| pet_name(&format!("session-{n}")))
            .collect();
        assert!(names.len() > 150, "only {} distinct names", names.len());
        let name = pet_name(id);
        let (adjective, animal) = name.split_once('-').unwrap();
        assert!(ADJECTIVES.contains(&adjective) && ANIMALS.contains(&animal));
    }
}
