//! The v2 golden vectors (`tests/vectors/v2.tsv`, made with openssl by
//! `scripts/gen-vectors`), one row per case.

pub struct Vector {
    pub secret: &'static str,
    pub key_id: &'static str,
    pub method: &'static str,
    pub path: &'static str,
    pub timestamp: i64,
    pub session_id: &'static str,
    pub nonce: &'static str,
    pub body_hex: &'static str,
    pub content_sha256: &'static str,
    pub message: &'static str,
    pub signature: &'static str,
}

pub fn vectors() -> Vec<Vector> {
    include_str!("../../tests/vectors/v2.tsv")
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            Vector {
                secret: f[0],
                key_id: f[1],
                method: f[2],
                path: f[3],
                timestamp: f[4].parse().unwrap(),
                session_id: f[5],
                nonce: f[6],
                body_hex: f[7],
                content_sha256: f[8],
                message: f[9],
                signature: f[10],
            }
        })
        .collect()
}
