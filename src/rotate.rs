//! `vestibule rotate-key`: re-seals every stored session and document token under the key
//! ring's active key, in batches, while gateways keep running.
//!
//! Each record is replaced only if its sealed bytes are still the ones read (a gateway may have
//! rewritten it meanwhile: it then sealed it with the active key already), so nothing a
//! running gateway writes is lost. A record under a key that is no longer in the ring is
//! counted and left alone: it is never read as plaintext, and it stops opening for everyone.

use crate::crypto::KeyRing;
use crate::session;
use crate::store::{Store, StoreError};
use crate::tokens;

/// Records read per batch.
const BATCH: u32 = 500;

/// What a rotation did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RotationReport {
    /// Session records re-sealed under the active key.
    pub sessions_resealed: u64,
    /// Token records re-sealed under the active key.
    pub tokens_resealed: u64,
    /// Of those, records moved to their owner's digest under the active key.
    pub tokens_moved: u64,
    /// Records already under the active key.
    pub already_current: u64,
    /// Records that do not open with the ring (their key was removed, or they were damaged),
    /// as `(kind, key id named in the record)`.
    pub unreadable: Vec<(&'static str, String)>,
    /// Records a gateway rewrote between our read and our write (already current then).
    pub raced: u64,
}

/// Re-seals everything in `store` under `keys`' active key.
pub async fn rotate(store: &dyn Store, keys: &KeyRing) -> Result<RotationReport, StoreError> {
    let mut report = RotationReport::default();
    let mut after: Option<String> = None;
    loop {
        let page = store.session_payloads(after.as_deref(), BATCH).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.0.clone());
        for (id, tenant, payload) in page {
            match session::reseal_record(keys, &id, &tenant, &payload) {
                Ok(None) => report.already_current += 1,
                Ok(Some(new)) => {
                    if store.replace_session_payload(&id, &payload, &new).await? {
                        report.sessions_resealed += 1;
                    } else {
                        report.raced += 1;
                    }
                }
                Err(_) => report.unreadable.push(("session", key_id(&payload))),
            }
        }
    }
    let mut after: Option<tokens::TokenId> = None;
    loop {
        let page = store.token_records(after.as_ref(), BATCH).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        for record in page {
            match tokens::rekey(keys, &record) {
                Ok(tokens::Rekeyed::Current) => report.already_current += 1,
                Ok(tokens::Rekeyed::Resealed(new)) => {
                    if store
                        .replace_token_payload(&record.id, &record.payload, &new)
                        .await?
                    {
                        report.tokens_resealed += 1;
                    } else {
                        report.raced += 1;
                    }
                }
                Ok(tokens::Rekeyed::Moved(new)) => {
                    if store.move_token(&record, &new).await? {
                        report.tokens_resealed += 1;
                        report.tokens_moved += 1;
                    } else {
                        report.raced += 1;
                    }
                }
                Err(_) => report
                    .unreadable
                    .push(("document token", key_id(&record.payload))),
            }
        }
    }
    Ok(report)
}

fn key_id(payload: &[u8]) -> String {
    KeyRing::key_id_of(payload).unwrap_or("?").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, FixedClock};
    use crate::config::SessionConfig;
    use crate::crypto::KEY_LEN;
    use crate::session::SessionManager;
    use crate::store::SqliteStore;
    use crate::tokens::{DocumentToken, StoredToken, TokenId, TokenSecret, TokenStatus};
    use std::sync::Arc;
    use std::time::Duration;

    fn ring(active: &str, ids: &[&str]) -> KeyRing {
        let keys: Vec<(String, [u8; KEY_LEN])> = ids
            .iter()
            .map(|id| (id.to_string(), [id.as_bytes()[1]; KEY_LEN]))
            .collect();
        KeyRing::new(active, &keys).unwrap()
    }

    fn token_id(owner: &str) -> TokenId {
        TokenId {
            tenant: "contoso".into(),
            owner: owner.into(),
            provider: "office365".into(),
            resource: "graph".into(),
        }
    }

    #[tokio::test]
    async fn every_record_moves_to_the_active_key_and_still_opens() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("v.db")).await.unwrap());
        let clock: Arc<dyn Clock> = Arc::new(FixedClock::new(1_000));
        let config = SessionConfig {
            cookie: "vestibule".into(),
            idle: Duration::from_secs(3600),
            absolute: Duration::from_secs(8 * 3600),
            cache_ttl: Duration::from_secs(30),
            cache_capacity: 100,
        };
        let old = Arc::new(ring("k1", &["k1"]));
        let before = SessionManager::<()>::new(
            store.clone(),
            old.clone(),
            clock.clone(),
            config.clone(),
            Box::new(|_, _, _| ()),
        );
        let mut cookies = Vec::new();
        for n in 0..7 {
            let identity = crate::identity::Identity {
                provider: "corp".into(),
                issuer: "https://sts.test/".into(),
                subject: format!("user-{n}"),
                user: format!("user-{n}@contoso.example"),
                email: None,
                name: None,
                idp_tenant: None,
                claims: Default::default(),
                crm: None,
                directory_key: None,
            };
            cookies.push(before.create("contoso", identity).await.unwrap().1);
        }
        let token = DocumentToken {
            access_token: TokenSecret::new("at"),
            expires_at: 5_000,
            refresh_token: Some(TokenSecret::new("rt")),
            scope: String::new(),
            status: TokenStatus::Ok,
            owner_key: None,
        };
        for owner in ["a", "b", "c"] {
            let id = token_id(owner);
            let record = StoredToken::sealed(&old, id, &token, 1, 1_000);
            assert!(store.put_token(&record, None).await.unwrap());
        }
        // One record under a key that has since left the ring.
        let lost = ring("k9", &["k9"]);
        let id = token_id("d");
        store
            .put_token(&StoredToken::sealed(&lost, id, &token, 1, 1_000), None)
            .await
            .unwrap();

        let both = Arc::new(ring("k2", &["k1", "k2"]));
        let report = rotate(store.as_ref(), &both).await.unwrap();
        assert_eq!(report.sessions_resealed, 7);
        assert_eq!(report.tokens_resealed, 3);
        assert_eq!(report.unreadable, vec![("document token", "k9".to_owned())]);
        let again = rotate(store.as_ref(), &both).await.unwrap();
        assert_eq!((again.sessions_resealed, again.tokens_resealed), (0, 0));
        assert_eq!(again.already_current, 10);

        // k1 can now leave the ring: everything still opens.
        let new_only = Arc::new(ring("k2", &["k2"]));
        let after = SessionManager::<()>::new(
            store.clone(),
            new_only.clone(),
            clock,
            config,
            Box::new(|_, _, _| ()),
        );
        for page in store.session_payloads(None, 100).await.unwrap() {
            let id = crate::session::SessionId::from_hex(&page.0).unwrap();
            assert!(after.identity(&id, "contoso").await.unwrap().is_some());
        }
        for owner in ["a", "b", "c"] {
            let record = store.get_token(&token_id(owner)).await.unwrap().unwrap();
            assert_eq!(tokens::open(&new_only, &record).unwrap(), token);
        }
        drop(cookies);
    }

    /// A user's token and session are found by digests of the same issuer and subject; after
    /// a rotation both carry the digest under the new key, so the token is still found (and
    /// still joins its sessions) once the old key has left the ring.
    #[tokio::test]
    async fn owner_and_session_digests_move_to_the_active_key() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("v.db")).await.unwrap());
        let clock: Arc<dyn Clock> = Arc::new(FixedClock::new(1_000));
        let config = SessionConfig {
            cookie: "vestibule".into(),
            idle: Duration::from_secs(3600),
            absolute: Duration::from_secs(8 * 3600),
            cache_ttl: Duration::from_secs(30),
            cache_capacity: 100,
        };
        let old = Arc::new(ring("k1", &["k1"]));
        let identity = crate::identity::Identity {
            provider: "corp".into(),
            issuer: "https://sts.test/".into(),
            subject: "alice".into(),
            user: "alice@contoso.example".into(),
            email: None,
            name: None,
            idp_tenant: None,
            claims: [("sid".to_owned(), serde_json::json!("op-session-1"))].into(),
            crm: None,
            directory_key: None,
        };
        let sessions = SessionManager::<()>::new(
            store.clone(),
            old.clone(),
            clock.clone(),
            config,
            Box::new(|_, _, _| ()),
        );
        sessions.create("contoso", identity.clone()).await.unwrap();
        let owner_key = crate::identity::subject_key(&identity.issuer, &identity.subject);
        let old_id = TokenId {
            owner: TokenId::user_owner(&old, &identity.issuer, &identity.subject),
            ..token_id("")
        };
        let token = DocumentToken {
            access_token: TokenSecret::new("at"),
            expires_at: 5_000,
            refresh_token: Some(TokenSecret::new("rt")),
            scope: String::new(),
            status: TokenStatus::Ok,
            owner_key: Some(owner_key),
        };
        let record = StoredToken::sealed(&old, old_id.clone(), &token, 3, 1_000);
        assert!(store.put_token(&record, None).await.unwrap());
        assert_eq!(
            store.due_tokens(6_000, 1_000, 0, 10).await.unwrap().len(),
            1
        );

        let both = ring("k2", &["k1", "k2"]);
        let report = rotate(store.as_ref(), &both).await.unwrap();
        assert_eq!((report.sessions_resealed, report.tokens_moved), (1, 1));

        let new_only = ring("k2", &["k2"]);
        let owners = TokenId::user_owners(&new_only, &identity.issuer, &identity.subject);
        let new_id = TokenId {
            owner: owners[0].clone(),
            ..old_id.clone()
        };
        assert_ne!(new_id, old_id);
        assert!(store.get_token(&old_id).await.unwrap().is_none());
        let moved = store.get_token(&new_id).await.unwrap().unwrap();
        assert_eq!(tokens::open(&new_only, &moved).unwrap(), token);
        assert_eq!(moved.generation, 4);
        // The refresher's join and an identity provider's sign-out still find them.
        assert_eq!(
            store.due_tokens(6_000, 1_000, 0, 10).await.unwrap(),
            vec![moved]
        );
        let after = SessionManager::<()>::new(
            store.clone(),
            Arc::new(new_only),
            clock,
            SessionConfig {
                cookie: "vestibule".into(),
                idle: Duration::from_secs(3600),
                absolute: Duration::from_secs(8 * 3600),
                cache_ttl: Duration::from_secs(30),
                cache_capacity: 100,
            },
            Box::new(|_, _, _| ()),
        );
        assert_eq!(
            after
                .revoke_for("https://sts.test", None, Some("op-session-1"))
                .await
                .unwrap(),
            1
        );
        let again = rotate(store.as_ref(), &both).await.unwrap();
        assert_eq!((again.tokens_resealed, again.tokens_moved), (0, 0));
    }
}
