//! Authentication is end to end: the origin asks, the client answers, the
//! proxy relays. Trust, md5 and SCRAM-SHA-256 users (see `support::origin`).

use tokio_postgres::error::SqlState;

use crate::support::origin::{
    MD5_PASSWORD, MD5_USER, SCRAM_PASSWORD, SCRAM_USER, SUPERUSER, TRUST_USER,
};
use crate::support::wire::{AUTH_MD5, AUTH_SASL, RawConn, fe};
use crate::support::{Proxy, connect};

async fn connect_as(
    proxy: &Proxy,
    user: &str,
    password: Option<&str>,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut cfg = proxy.pg_config(&format!("relay_auth_{user}"));
    cfg.user(user);
    if let Some(p) = password {
        cfg.password(p);
    }
    connect(&cfg).await
}

async fn assert_session_user(client: &tokio_postgres::Client, user: &str) {
    let row = client
        .query_one("SELECT session_user::text, 40 + $1::int4", &[&2i32])
        .await
        .expect("query after authenticating");
    assert_eq!(row.get::<_, String>(0), user);
    assert_eq!(row.get::<_, i32>(1), 42);
}

/// The first message the origin sends `user` through the proxy.
async fn first_auth_request(proxy: &Proxy, user: &str) -> crate::support::wire::Msg {
    let mut conn = RawConn::connect(proxy.addr).await;
    conn.send(&fe::startup(&[("user", user), ("database", "postgres")]))
        .await;
    let m = conn.recv().await.expect("authentication request");
    assert_eq!(m.tag, b'R', "expected an authentication request: {m:?}");
    m
}

#[tokio::test]
async fn trust_user_connects() {
    let proxy = Proxy::start().await;
    let client = connect_as(&proxy, TRUST_USER, None)
        .await
        .expect("trust user through the proxy");
    assert_session_user(&client, TRUST_USER).await;
    let client = connect_as(&proxy, SUPERUSER, None)
        .await
        .expect("superuser");
    assert_session_user(&client, SUPERUSER).await;
}

#[tokio::test]
async fn md5_user_connects() {
    let proxy = Proxy::start().await;
    let req = first_auth_request(&proxy, MD5_USER).await;
    assert_eq!(
        req.i32_at(0),
        AUTH_MD5,
        "origin should ask for md5: {req:?}"
    );
    let client = connect_as(&proxy, MD5_USER, Some(MD5_PASSWORD))
        .await
        .expect("md5 user through the proxy");
    assert_session_user(&client, MD5_USER).await;
}

#[tokio::test]
async fn scram_user_connects() {
    let proxy = Proxy::start().await;
    let req = first_auth_request(&proxy, SCRAM_USER).await;
    assert_eq!(
        req.i32_at(0),
        AUTH_SASL,
        "origin should ask for SASL: {req:?}"
    );
    let mechanisms = String::from_utf8_lossy(&req.body[4..]).into_owned();
    assert!(mechanisms.contains("SCRAM-SHA-256"), "{mechanisms:?}");
    let client = connect_as(&proxy, SCRAM_USER, Some(SCRAM_PASSWORD))
        .await
        .expect("scram user through the proxy");
    assert_session_user(&client, SCRAM_USER).await;
}

#[tokio::test]
async fn wrong_password_gets_origin_error() {
    let proxy = Proxy::start().await;
    for user in [MD5_USER, SCRAM_USER] {
        let err = connect_as(&proxy, user, Some("not-the-password"))
            .await
            .err()
            .unwrap_or_else(|| panic!("{user} connected with a wrong password"));
        let db = err
            .as_db_error()
            .unwrap_or_else(|| panic!("{user}: expected the origin's ErrorResponse, got {err:?}"));
        assert_eq!(db.code(), &SqlState::INVALID_PASSWORD, "{user}: {db:?}");
        assert!(
            db.message().contains(user),
            "{user}: message should be the origin's: {db:?}"
        );
    }
    // The proxy keeps serving after failed authentications.
    let client = connect_as(&proxy, MD5_USER, Some(MD5_PASSWORD))
        .await
        .expect("md5 user after failures");
    assert_session_user(&client, MD5_USER).await;
}
