//! A database set up by a telegate from before issue 14 (no `roles` /
//! `permissions` columns, `telegate_token` answering three columns) opens
//! as it is: the columns are added in place, the old token function is
//! replaced, and grants are stored and read from then on.

use super::*;
use crate::session::conformance::live;
use crate::session::Grants;

/// What version 1 as first shipped left behind, made from today's schema.
const BEFORE_GRANTS: &str = r#"
ALTER TABLE sessions DROP COLUMN roles, DROP COLUMN permissions;
DROP FUNCTION telegate_token(bytea, int8, int8, int8, boolean, text, text);
CREATE FUNCTION telegate_token(
  p_hash bytea, p_now int8, p_idle int8, p_retention int8, p_touch boolean,
  p_ip text, p_ua text, OUT o_state text, OUT o_id text, OUT o_user text)
LANGUAGE plpgsql AS $$ BEGIN o_state := 'unknown'; END $$;
"#;

#[tokio::test]
async fn a_database_from_before_grants_gains_them_in_place() {
    let Some(server) = PgServer::start("postgres a_database_from_before_grants") else {
        return;
    };
    let db = server.database().await;
    let old = open(&server, &db, settings());
    issued::issue(&old, "i0", "tok-0", Some("ann"), T0).await;
    let url = format!("{}?password={PASSWORD}", server.url(&db));
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client.batch_execute(BEFORE_GRANTS).await.unwrap();
    drop(old);

    let store = open(&server, &db, settings());
    assert!(live(&store, "i0", T0).await.grants.is_empty());
    let grants = Grants {
        roles: vec!["admin".into()],
        permissions: vec!["write".into()],
    };
    let mut new = issued::new_session("i1", "tok-1", None, T0);
    new.grants = grants.clone();
    assert!(matches!(
        store.issue(new).await.unwrap(),
        Issue::Created { .. }
    ));
    assert_eq!(live(&store, "i1", T0).await.grants, grants);
    let check = store.find_token(&TokenHash::of("tok-1"), T0).await.unwrap();
    assert!(matches!(check, TokenCheck::Live(owner) if owner.grants == grants));
}
