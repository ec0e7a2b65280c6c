//! Every statement the PostgreSQL store runs, in one place: the schema
//! (created on connect), the PL/pgSQL functions that make one API change
//! one atomic round trip (as the Redis store's Lua scripts do), and the
//! plain queries.
//!
//! Tables: `meta` (schema version, wipe epoch), `sessions` (both kinds;
//! `token` is the SHA-256 of an issued session's current token, never the
//! token), `tokens` (hash -> session, kept past the session so a revoked
//! session's token answers "revoked"), `revocations` (the change log every
//! replica polls: `id bigserial`, ids committed in order, see
//! `telegate_revoke`) and `statics` (static-header first sightings). Every
//! row carries the second after which the prune may delete it. Times are
//! Unix seconds (`int8`). Ids sort bytewise (`COLLATE "C"`), like the other
//! stores' listings.

/// The schema this build writes; a database with a newer one is refused.
pub const SCHEMA_VERSION: i64 = 1;

/// Serializes schema setup between replicas starting together.
pub const SETUP_LOCK: &str = "BEGIN; SELECT pg_advisory_xact_lock(7262001);
CREATE TABLE IF NOT EXISTS meta (name text PRIMARY KEY, value text NOT NULL);
INSERT INTO meta VALUES ('schema_version', '1') ON CONFLICT DO NOTHING;
INSERT INTO meta VALUES ('epoch', md5(random()::text || clock_timestamp()::text))
  ON CONFLICT DO NOTHING;";

pub const VERSION: &str = "SELECT value::int8 FROM meta WHERE name = 'schema_version'";

/// Run inside the setup transaction, after the version check; commits.
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS sessions (
  id text COLLATE "C" PRIMARY KEY,
  kind text NOT NULL,
  first_seen int8 NOT NULL,
  last_seen int8 NOT NULL,
  expires_at int8,
  requests int8 NOT NULL DEFAULT 0,
  bytes int8 NOT NULL DEFAULT 0,
  client_ip text, user_agent text, client_version text, key_id text,
  revoked_at int8,
  user_id text, metadata text, ip_key text, token bytea,
  purge_at int8 NOT NULL
);
-- Added after version 1 shipped: in place, so a version-1 database opens
-- as it is. telegate_token's answer gained two columns, and a function's
-- OUT columns cannot be replaced: the old one is dropped first (the
-- setup lock is held; its first three columns stay what they were).
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS roles text;
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS permissions text;
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'telegate_token'
                 AND 'o_roles' = ANY (proargnames)) THEN
    DROP FUNCTION IF EXISTS telegate_token(bytea, int8, int8, int8, boolean, text, text);
  END IF;
END $$;
CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS sessions_ip_key ON sessions (ip_key) WHERE ip_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS sessions_purge ON sessions (purge_at);
CREATE TABLE IF NOT EXISTS tokens (
  hash bytea PRIMARY KEY, session_id text NOT NULL, keep_until int8 NOT NULL
);
CREATE TABLE IF NOT EXISTS revocations (
  id bigserial PRIMARY KEY, session_id text NOT NULL,
  revoked_at int8 NOT NULL, until int8 NOT NULL
);
CREATE INDEX IF NOT EXISTS revocations_session ON revocations (session_id);
CREATE TABLE IF NOT EXISTS statics (
  digest bytea PRIMARY KEY, client_ip text NOT NULL,
  first_seen int8 NOT NULL, purge_at int8 NOT NULL
);
-- [sessions.encryption]: the storage key id of the writer when a row's
-- private fields are sealed (each value names its own key too); NULL in clear.
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS seal text;
ALTER TABLE statics ADD COLUMN IF NOT EXISTS seal text;

-- Deletes a session and its token; true when it existed.
CREATE OR REPLACE FUNCTION telegate_drop(p_id text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE v_token bytea; v_found boolean;
BEGIN
  DELETE FROM sessions WHERE id = p_id RETURNING token INTO v_token;
  v_found := FOUND;
  IF v_token IS NOT NULL THEN DELETE FROM tokens WHERE hash = v_token; END IF;
  RETURN v_found;
END $$;

-- Stores an issued session under the per-address and per-user limits
-- (advisory locks make the count and the insert one step across replicas).
CREATE OR REPLACE FUNCTION telegate_issue(
  p_id text, p_token bytea, p_now int8, p_exp int8, p_idle int8, p_retention int8,
  p_keep int8, p_user text, p_max_user int8, p_refuse boolean, p_addr text,
  p_max_ip int8, p_local_live int8, p_meta text, p_ip text, p_ua text, p_ver text,
  p_key text, p_roles text, p_perms text, p_seal text, OUT o_outcome text, OUT o_evicted int8)
LANGUAGE plpgsql AS $$
DECLARE v_live int8; v_old text;
BEGIN
  o_evicted := 0;
  IF p_addr IS NOT NULL THEN
    PERFORM pg_advisory_xact_lock(hashtext('ip:' || p_addr));
    SELECT count(*) INTO v_live FROM sessions s WHERE s.ip_key = p_addr AND s.id <> p_id
      AND s.kind = 'issued' AND least(s.expires_at, s.last_seen + p_idle) >= p_now;
    IF v_live + p_local_live >= p_max_ip THEN o_outcome := 'too_many_for_ip'; RETURN; END IF;
  END IF;
  IF p_user IS NOT NULL THEN
    PERFORM pg_advisory_xact_lock(hashtext('u:' || p_user));
    LOOP
      SELECT s.id INTO v_old FROM sessions s WHERE s.user_id = p_user AND s.kind = 'issued'
        AND least(s.expires_at, s.last_seen + p_idle) >= p_now
        ORDER BY s.first_seen, s.id OFFSET p_max_user - 1 LIMIT 1;
      EXIT WHEN NOT FOUND;
      IF p_refuse THEN o_outcome := 'too_many_for_user'; RETURN; END IF;
      SELECT s.id INTO v_old FROM sessions s WHERE s.user_id = p_user AND s.kind = 'issued'
        AND least(s.expires_at, s.last_seen + p_idle) >= p_now
        ORDER BY s.first_seen, s.id LIMIT 1;
      PERFORM telegate_drop(v_old);
      o_evicted := o_evicted + 1;
    END LOOP;
  END IF;
  PERFORM telegate_drop(p_id);
  INSERT INTO sessions (id, kind, first_seen, last_seen, expires_at, client_ip, user_agent,
    client_version, key_id, user_id, metadata, ip_key, token, purge_at, roles, permissions, seal)
  VALUES (p_id, 'issued', p_now, p_now, p_exp, p_ip, p_ua, p_ver, p_key, p_user, p_meta,
    p_addr, p_token, least(p_exp, p_now + p_idle) + p_retention, p_roles, p_perms, p_seal);
  -- The token row ends with its session's absolute end (plus the
  -- retention, so an expired session's token still answers "expired"),
  -- never later than p_keep from now.
  INSERT INTO tokens VALUES (p_token, p_id, least(p_now + p_keep, p_exp + p_retention))
    ON CONFLICT (hash) DO UPDATE SET session_id = EXCLUDED.session_id,
      keep_until = EXCLUDED.keep_until;
  o_outcome := 'created';
END $$;

-- Which session a token opens (unknown | revoked | expired | live), with
-- its user, roles and permissions; a live one is touched when asked (an
-- /auth request).
CREATE OR REPLACE FUNCTION telegate_token(
  p_hash bytea, p_now int8, p_idle int8, p_retention int8, p_touch boolean,
  p_ip text, p_ua text, OUT o_state text, OUT o_id text, OUT o_user text,
  OUT o_roles text, OUT o_perms text)
LANGUAGE plpgsql AS $$
DECLARE v_s sessions%ROWTYPE;
BEGIN
  SELECT t.session_id INTO o_id FROM tokens t WHERE t.hash = p_hash AND t.keep_until >= p_now;
  IF o_id IS NULL THEN o_state := 'unknown'; RETURN; END IF;
  IF EXISTS (SELECT 1 FROM revocations r WHERE r.session_id = o_id AND r.until >= p_now) THEN
    o_state := 'revoked'; RETURN;
  END IF;
  SELECT * INTO v_s FROM sessions s WHERE s.id = o_id;
  -- The index may lag a refresh or a reused id: the record decides.
  IF NOT FOUND OR v_s.kind <> 'issued' OR v_s.token IS DISTINCT FROM p_hash THEN
    o_state := 'unknown'; o_id := NULL; RETURN;
  END IF;
  o_user := v_s.user_id;
  o_roles := v_s.roles;
  o_perms := v_s.permissions;
  IF least(v_s.expires_at, v_s.last_seen + p_idle) < p_now THEN o_state := 'expired'; RETURN; END IF;
  IF p_touch THEN
    UPDATE sessions SET last_seen = p_now, requests = requests + 1, client_ip = p_ip,
      user_agent = p_ua, purge_at = least(expires_at, p_now + p_idle) + p_retention
      WHERE id = o_id;
  END IF;
  o_state := 'live';
END $$;

-- Touches, extends or refreshes a live issued session
-- (unknown | not_issued | expired | done).
CREATE OR REPLACE FUNCTION telegate_change(
  p_id text, p_now int8, p_idle int8, p_retention int8, p_op text, p_seconds int8,
  p_token bytea, p_max_life int8, p_keep int8) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE v_s sessions%ROWTYPE; v_exp int8; v_token bytea;
BEGIN
  SELECT * INTO v_s FROM sessions s WHERE s.id = p_id FOR UPDATE;
  IF NOT FOUND THEN RETURN 'unknown'; END IF;
  IF v_s.kind <> 'issued' THEN RETURN 'not_issued'; END IF;
  v_exp := v_s.expires_at;
  v_token := v_s.token;
  IF least(v_exp, v_s.last_seen + p_idle) < p_now THEN RETURN 'expired'; END IF;
  IF p_op = 'extend' THEN
    v_exp := greatest(least(v_exp + p_seconds, v_s.first_seen + p_max_life), v_exp);
    -- The token row follows the session's new end (as at issue).
    IF v_token IS NOT NULL THEN
      UPDATE tokens SET keep_until = least(p_now + p_keep, v_exp + p_retention)
        WHERE hash = v_token;
    END IF;
  ELSIF p_op = 'refresh' THEN
    -- The old token is dead when this commits.
    IF v_token IS NOT NULL THEN DELETE FROM tokens WHERE hash = v_token; END IF;
    v_token := p_token;
    INSERT INTO tokens VALUES (p_token, p_id, least(p_now + p_keep, v_exp + p_retention))
      ON CONFLICT (hash) DO UPDATE SET session_id = EXCLUDED.session_id,
        keep_until = EXCLUDED.keep_until;
  END IF;
  UPDATE sessions SET expires_at = v_exp, last_seen = p_now, token = v_token,
    purge_at = least(v_exp, p_now + p_idle) + p_retention WHERE id = p_id;
  RETURN 'done';
END $$;

-- Revokes a session: its kind, or NULL for an unknown id. The advisory lock
-- is taken before the log id is drawn and held until commit, so log ids
-- become visible in order and a poller's `id > last` never skips one.
CREATE OR REPLACE FUNCTION telegate_revoke(
  p_id text, p_now int8, p_until int8, p_keep int8) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE v_kind text; v_token bytea;
BEGIN
  PERFORM pg_advisory_xact_lock(7262002);
  SELECT s.kind, s.token INTO v_kind, v_token FROM sessions s WHERE s.id = p_id FOR UPDATE;
  IF NOT FOUND THEN RETURN NULL; END IF;
  IF v_kind = 'issued' THEN
    -- Deleted, but its token stays known so it is answered "revoked".
    DELETE FROM sessions WHERE id = p_id;
    IF v_token IS NOT NULL THEN
      UPDATE tokens SET keep_until = p_now + p_keep WHERE hash = v_token;
    END IF;
  ELSE
    UPDATE sessions SET revoked_at = coalesce(revoked_at, p_now) WHERE id = p_id;
  END IF;
  INSERT INTO revocations (session_id, revoked_at, until) VALUES (p_id, p_now, p_until);
  RETURN v_kind;
END $$;

CREATE OR REPLACE FUNCTION telegate_delete_user(p_user text) RETURNS int8
LANGUAGE plpgsql AS $$
DECLARE v_id text; v_count int8 := 0;
BEGIN
  FOR v_id IN SELECT s.id FROM sessions s WHERE s.user_id = p_user AND s.kind = 'issued' LOOP
    IF telegate_drop(v_id) THEN v_count := v_count + 1; END IF;
  END LOOP;
  RETURN v_count;
END $$;

-- Forgets everything; a new epoch tells every replica to clear its cache.
CREATE OR REPLACE FUNCTION telegate_wipe() RETURNS int8
LANGUAGE plpgsql AS $$
DECLARE v_count int8;
BEGIN
  PERFORM pg_advisory_xact_lock(7262002);
  SELECT count(*) INTO v_count FROM sessions;
  DELETE FROM sessions; DELETE FROM tokens; DELETE FROM revocations; DELETE FROM statics;
  UPDATE meta SET value = md5(random()::text || clock_timestamp()::text) WHERE name = 'epoch';
  RETURN v_count;
END $$;
COMMIT;
"#;

/// The columns of a record, in the order `rows::record` reads them.
macro_rules! record_columns {
    () => {
        "id, kind, first_seen, last_seen, expires_at, requests, bytes, client_ip, \
         user_agent, client_version, key_id, revoked_at, user_id, metadata, roles, permissions, seal"
    };
}

/// The last live second of a row (either kind); `$idle` is the parameter.
macro_rules! live_until {
    ($idle:literal) => {
        concat!(
            "CASE kind WHEN 'issued' THEN least(expires_at, last_seen + ",
            $idle,
            ") ELSE last_seen + ",
            $idle,
            " END"
        )
    };
}

pub const ISSUE: &str = "SELECT o_outcome, o_evicted FROM telegate_issue($1, $2, $3, $4, $5, \
     $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)";
pub const TOKEN: &str =
    "SELECT o_state, o_id, o_user, o_roles, o_perms FROM telegate_token($1, $2, $3, $4, $5, $6, $7)";
pub const CHANGE: &str = "SELECT telegate_change($1, $2, $3, $4, $5, $6, $7, $8, $9)";
pub const REVOKE: &str = "SELECT telegate_revoke($1, $2, $3, $4)";
pub const DELETE: &str = "SELECT telegate_drop($1)";
pub const DELETE_USER: &str = "SELECT telegate_delete_user($1)";
pub const WIPE: &str = "SELECT telegate_wipe()";

/// `$1` id, `$2` now.
pub const LOOKUP: &str = concat!(
    "SELECT ",
    record_columns!(),
    " FROM sessions WHERE id = $1 AND purge_at >= $2"
);

/// `$1` after (cursor), `$2` kind, `$3` the user's `user_id` values
/// (`seal::user_columns`), `$4` active (NULL: either),
/// `$5` now, `$6` idle, `$7` limit.
pub const LIST: &str = concat!(
    "SELECT ",
    record_columns!(),
    " FROM sessions WHERE purge_at >= $5 AND ($1::text IS NULL OR id > $1)
      AND ($2::text IS NULL OR kind = $2) AND ($3::text[] IS NULL OR user_id = ANY($3))
      AND ($4::bool IS NULL OR $4 = (revoked_at IS NULL AND ",
    live_until!("$6"),
    " >= $5)) ORDER BY id LIMIT $7"
);

/// `$1` now: every readable record (stats, admin only).
pub const ALL: &str = concat!(
    "SELECT ",
    record_columns!(),
    " FROM sessions WHERE purge_at >= $1"
);

/// Write-behind of signed sessions, one batch as arrays (ids sorted, so two
/// replicas' batches lock rows in one order). `$10` idle, `$11` retention,
/// `$12` the sealing key's id (NULL: in clear).
/// A row idle past its end before the batch starts over; otherwise the
/// counts add up and the latest sighting says who the client is. An issued
/// session named by a signature stays issued.
pub const FLUSH: &str = "INSERT INTO sessions AS s (id, kind, first_seen, last_seen, requests,
    bytes, client_ip, user_agent, client_version, key_id, purge_at, seal)
  SELECT d.id, 'signed', d.since, d.last, d.req, d.bytes, d.ip, d.ua, d.ver, d.key,
    d.last + $10::int8 + $11::int8, $12::text
  FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::text[],
    $7::text[], $8::text[], $9::text[]) AS d(id, since, last, req, bytes, ip, ua, ver, key)
  ORDER BY d.id
  ON CONFLICT (id) DO UPDATE SET
    first_seen = CASE WHEN s.last_seen + $10::int8 < EXCLUDED.first_seen
      THEN EXCLUDED.first_seen ELSE least(s.first_seen, EXCLUDED.first_seen) END,
    requests = CASE WHEN s.last_seen + $10::int8 < EXCLUDED.first_seen
      THEN EXCLUDED.requests ELSE s.requests + EXCLUDED.requests END,
    bytes = CASE WHEN s.last_seen + $10::int8 < EXCLUDED.first_seen
      THEN EXCLUDED.bytes ELSE s.bytes + EXCLUDED.bytes END,
    revoked_at = CASE WHEN s.last_seen + $10::int8 < EXCLUDED.first_seen
      THEN NULL ELSE s.revoked_at END,
    client_ip = CASE WHEN EXCLUDED.last_seen >= s.last_seen
      THEN EXCLUDED.client_ip ELSE s.client_ip END,
    user_agent = CASE WHEN EXCLUDED.last_seen >= s.last_seen
      THEN EXCLUDED.user_agent ELSE s.user_agent END,
    client_version = CASE WHEN EXCLUDED.last_seen >= s.last_seen
      THEN EXCLUDED.client_version ELSE s.client_version END,
    key_id = CASE WHEN EXCLUDED.last_seen >= s.last_seen
      THEN EXCLUDED.key_id ELSE s.key_id END,
    seal = CASE WHEN EXCLUDED.last_seen >= s.last_seen
      THEN EXCLUDED.seal ELSE s.seal END,
    last_seen = greatest(s.last_seen, EXCLUDED.last_seen),
    purge_at = greatest(s.last_seen, EXCLUDED.last_seen) + $10::int8 + $11::int8
  WHERE s.kind = 'signed'";

/// First sightings, one batch; the first one anywhere wins.
pub const FLUSH_STATICS: &str = "INSERT INTO statics (digest, client_ip, first_seen, purge_at,
    seal)
  SELECT d.*, $5::text FROM unnest($1::bytea[], $2::text[], $3::int8[], $4::int8[]) AS d
  ON CONFLICT (digest) DO NOTHING";

/// `$1` digest, `$2` now.
pub const STATIC: &str = "SELECT client_ip, first_seen, purge_at, seal FROM statics
    WHERE digest = $1 AND purge_at > $2";

/// With `[sessions.encryption]` a token check's touch leaves the client in
/// `telegate_token` empty (it does not know the session id the values are
/// sealed under) and writes it sealed here: `$1` id, `$2` address, `$3`
/// agent, `$4` the sealing key's id.
pub const TOUCH_SEALED: &str = "UPDATE sessions SET client_ip = $2, user_agent = $3, seal = $4
  WHERE id = $1 AND kind = 'issued'";

/// The storage keys sealed rows name (checked on connect, at most 64).
pub const SEAL_KEYS: &str = "SELECT DISTINCT k FROM (
  SELECT split_part(v, ':', 1) AS k FROM sessions s,
    unnest(ARRAY[s.client_ip, s.user_agent, s.metadata, s.user_id, s.ip_key]) AS v
    WHERE s.seal IS NOT NULL AND v IS NOT NULL
  UNION SELECT split_part(client_ip, ':', 1) FROM statics WHERE seal IS NOT NULL) AS keys
  LIMIT 64";

/// The change log since `$1`, in order, at most `$2` entries.
pub const POLL: &str =
    "SELECT id, session_id, until FROM revocations WHERE id > $1 ORDER BY id LIMIT $2";

/// The wipe epoch and the live issued sessions (`$1` now, `$2` idle).
pub const STATE: &str = "SELECT (SELECT value FROM meta WHERE name = 'epoch'),
  (SELECT count(*) FROM sessions WHERE kind = 'issued'
     AND least(expires_at, last_seen + $2) >= $1)";

/// Rows past their end (`$1` now); run about every minute.
pub const PRUNE: [&str; 4] = [
    "DELETE FROM sessions WHERE purge_at < $1",
    "DELETE FROM tokens WHERE keep_until < $1",
    "DELETE FROM revocations WHERE until < $1",
    "DELETE FROM statics WHERE purge_at < $1",
];
