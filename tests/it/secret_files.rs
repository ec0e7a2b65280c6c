//! `*_FILE` for every secret given by environment (the Docker secrets
//! convention): a key's `NAME_FILE`, `KOTORMODSYNC_SIGNING_SECRET_FILE`,
//! the session stores' URLs and the Redis password, the admin token file;
//! each read with the key files' checks (regular, bounded, trailing newline
//! trimmed), and a variable beside its `_FILE` is an error naming both.

use telegate::config::{self, ConfigSource, MapEnv, StoreBackend};
use telegate::protocol::keyring::Keyring;

use crate::support::{telegate_command, Workdir};

const KEY_BY_ENV: &str =
    "listen = \"127.0.0.1:0\"\n[[auth.keys]]\nid = \"k\"\nenv = \"SIGNING_SECRET\"\n";

fn load(work: &Workdir, config: &str, env: &MapEnv) -> Result<config::Settings, String> {
    let path = work.write("telegate.toml", config);
    config::load(&ConfigSource::File(path), env).map_err(|e| e.to_string())
}

fn redis_url(settings: &config::Settings) -> String {
    match &settings.sessions.backend {
        StoreBackend::Redis(redis) => redis.url.clone(),
        _ => panic!("not the Redis store"),
    }
}

#[test]
fn a_key_secret_comes_from_its_file_and_not_from_both() {
    let work = Workdir::new("secret-files-key");
    let file = work.write("signing_secret", "from-a-docker-secret-0123456789\n");
    let file = file.to_str().unwrap();
    let settings = load(&work, KEY_BY_ENV, &MapEnv::default()).unwrap();
    let by_file = MapEnv::from([("SIGNING_SECRET_FILE", file)]);
    let ring = Keyring::load(&settings.keys, &by_file).unwrap();
    let direct = MapEnv::from([("SIGNING_SECRET", "from-a-docker-secret-0123456789")]);
    let same = Keyring::load(&settings.keys, &direct).unwrap();
    assert_eq!(
        ring.keys()[0].tag(b"m"),
        same.keys()[0].tag(b"m"),
        "the file's secret, its newline trimmed"
    );
    let both = MapEnv::from([("SIGNING_SECRET", "x"), ("SIGNING_SECRET_FILE", file)]);
    let err = Keyring::load(&settings.keys, &both)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("both SIGNING_SECRET and SIGNING_SECRET_FILE"),
        "{err}"
    );
    assert!(!err.contains("docker-secret"), "{err}");
    let device = MapEnv::from([("SIGNING_SECRET_FILE", "/dev/zero")]);
    let err = Keyring::load(&settings.keys, &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a regular file"), "{err}");
}

#[test]
fn the_original_variable_takes_a_file_too() {
    let work = Workdir::new("secret-files-legacy");
    let file = work.write("kms", "legacy-secret-from-file-0123456789\n");
    let env = MapEnv::from([("KOTORMODSYNC_SIGNING_SECRET_FILE", file.to_str().unwrap())]);
    let settings = load(&work, "listen = \"127.0.0.1:0\"\n", &env).unwrap();
    let ring = Keyring::load(&settings.keys, &env).unwrap();
    let ids: Vec<&str> = ring.keys().iter().map(|k| k.id.as_str()).collect();
    assert_eq!(ids, ["kotormodsync"]);
}

#[test]
fn store_urls_and_the_redis_password_come_from_files() {
    let work = Workdir::new("secret-files-stores");
    let redis = "listen = \"127.0.0.1:0\"\n[sessions]\nstore = \"redis\"\n";
    let url = work.write("redis_url", "redis://:pw-in-url@10.0.0.5:6379/2\n");
    let env = MapEnv::from([("TELEGATE_SESSIONS__REDIS_URL_FILE", url.to_str().unwrap())]);
    let settings = load(&work, redis, &env).unwrap();
    assert_eq!(redis_url(&settings), "redis://:pw-in-url@10.0.0.5:6379/2");

    let password = work.write("redis_password", "s3cr:t/@\n");
    let env = MapEnv::from([
        ("TELEGATE_SESSIONS__REDIS_URL", "redis://redis:6379"),
        (
            "TELEGATE_SESSIONS__REDIS_PASSWORD_FILE",
            password.to_str().unwrap(),
        ),
    ]);
    let settings = load(&work, redis, &env).unwrap();
    assert_eq!(redis_url(&settings), "redis://:s3cr%3At%2F%40@redis:6379");

    let both = MapEnv::from([
        ("TELEGATE_SESSIONS__REDIS_URL", "redis://redis:6379"),
        ("TELEGATE_SESSIONS__REDIS_URL_FILE", url.to_str().unwrap()),
    ]);
    let err = load(&work, redis, &both).unwrap_err();
    assert!(
        err.contains("both TELEGATE_SESSIONS__REDIS_URL and TELEGATE_SESSIONS__REDIS_URL_FILE"),
        "{err}"
    );
    assert!(!err.contains("pw-in-url"), "{err}");

    let postgres = "listen = \"127.0.0.1:0\"\n[sessions]\nstore = \"postgres\"\n";
    let pg = work.write("pg_url", "postgres://telegate:pg-pw@db:5432/telegate\n");
    let env = MapEnv::from([("TELEGATE_SESSIONS__POSTGRES_URL_FILE", pg.to_str().unwrap())]);
    let settings = load(&work, postgres, &env).unwrap();
    match &settings.sessions.backend {
        StoreBackend::Postgres(pg) => {
            assert_eq!(pg.url, "postgres://telegate:pg-pw@db:5432/telegate")
        }
        _ => panic!("not the PostgreSQL store"),
    }
    let big = work.write("big", &"a".repeat(70 * 1024));
    let env = MapEnv::from([(
        "TELEGATE_SESSIONS__POSTGRES_URL_FILE",
        big.to_str().unwrap(),
    )]);
    let err = load(&work, postgres, &env).unwrap_err();
    assert!(err.contains("larger than"), "{err}");
}

#[test]
fn check_config_names_both_variables_and_reads_the_admin_token_file() {
    let work = Workdir::new("secret-files-cli");
    let secret = work.write("signing_secret", "cli-secret-from-a-file-0123456789\n");
    let token = work.write("admin_token", "an-admin-token-from-a-docker-secret\n");
    let config = work.write("telegate.toml", KEY_BY_ENV);
    let run = |env: &[(&str, &str)]| {
        let mut command = telegate_command();
        command.args(["check-config", "--config", config.to_str().unwrap()]);
        for (name, value) in env {
            command.env(name, value);
        }
        command.output().unwrap()
    };
    let secret = secret.to_str().unwrap();
    let ok = run(&[
        ("SIGNING_SECRET_FILE", secret),
        ("TELEGATE_ADMIN__TOKEN_FILE", token.to_str().unwrap()),
    ]);
    assert!(ok.status.success(), "{ok:?}");
    let both = run(&[("SIGNING_SECRET", "x"), ("SIGNING_SECRET_FILE", secret)]);
    assert_eq!(both.status.code(), Some(64), "{both:?}");
    let stderr = String::from_utf8_lossy(&both.stderr);
    assert!(
        stderr.contains("both SIGNING_SECRET and SIGNING_SECRET_FILE"),
        "{stderr}"
    );
}
