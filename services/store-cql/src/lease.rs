//! The [`LeaseStore`] on CQL: sessions are plain writes of the holder's own row, claims are
//! lightweight transactions (Paxos) and are read back at serial consistency, so a read sees
//! the outcome of every completed compare-and-set.
//!
//! A lightweight transaction that times out has an unknown outcome (it may still be applied):
//! it surfaces as [`StoreError::Unavailable`], and the caller learns the truth from
//! [`LeaseStore::claim_of`].

use async_trait::async_trait;
use chorus_core::{
    lease::{ClaimOutcome, LeaseStore, SlotClaim},
    store::StoreError,
};
use scylla::{
    response::query_result::QueryResult,
    value::{CqlValue, Row},
};

use crate::{
    CqlStore,
    error::{corrupt, unavailable},
};

fn slot_key(slot: u32) -> Result<i32, StoreError> {
    i32::try_from(slot).map_err(|_| corrupt(format!("slot {slot} does not fit a CQL int")))
}

fn epoch_value(epoch: u64) -> Result<i64, StoreError> {
    i64::try_from(epoch).map_err(|_| corrupt(format!("epoch {epoch} does not fit a CQL bigint")))
}

/// A lightweight transaction's answer: whether it applied, and the row it saw (Cassandra and
/// ScyllaDB return `[applied]` plus the current values of the columns it compared, in their
/// own column order, so columns are found by name).
struct Lwt {
    applied: bool,
    current: Option<SlotClaim>,
}

fn parse_lwt(result: QueryResult, with_claim: bool) -> Result<Lwt, StoreError> {
    let rows = result.into_rows_result().map_err(corrupt)?;
    let specs = rows.column_specs();
    let index = |name: &str| specs.get_by_name(name).map(|(i, _)| i);
    let (applied_at, holder_at, epoch_at, released_at) = (
        index("[applied]").ok_or_else(|| corrupt("lightweight transaction without [applied]"))?,
        index("holder"),
        index("epoch"),
        index("released"),
    );
    let row: Row = rows
        .maybe_first_row::<Row>()
        .map_err(corrupt)?
        .ok_or_else(|| corrupt("lightweight transaction without a result row"))?;
    let column = |i: Option<usize>| i.and_then(|i| row.columns.get(i).cloned().flatten());
    let applied = match column(Some(applied_at)) {
        Some(CqlValue::Boolean(b)) => b,
        other => return Err(corrupt(format!("[applied] is {other:?}"))),
    };
    if !with_claim {
        return Ok(Lwt {
            applied,
            current: None,
        });
    }
    let current = match (column(holder_at), column(epoch_at), column(released_at)) {
        (
            Some(CqlValue::Text(holder)),
            Some(CqlValue::BigInt(epoch)),
            Some(CqlValue::Boolean(released)),
        ) => Some(SlotClaim {
            holder,
            epoch: u64::try_from(epoch).map_err(|_| corrupt(format!("negative epoch {epoch}")))?,
            released,
        }),
        // No row (never claimed): the compared columns are absent or null.
        (None, None, None) => None,
        other => return Err(corrupt(format!("slot claim columns {other:?}"))),
    };
    Ok(Lwt { applied, current })
}

#[async_trait]
impl LeaseStore for CqlStore {
    async fn renew_session(&self, holder: &str, expires_ms: u64) -> Result<(), StoreError> {
        let expires = i64::try_from(expires_ms)
            .map_err(|_| corrupt(format!("expiry {expires_ms} does not fit a CQL bigint")))?;
        self.bounded(async {
            self.session
                .execute_unpaged(&self.st.renew_session, (holder, expires, self.clock.next()))
                .await
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn session_expiry(&self, holder: &str) -> Result<Option<u64>, StoreError> {
        self.bounded(async {
            let row = self
                .session
                .execute_unpaged(&self.st.session_expiry, (holder,))
                .await
                .map_err(unavailable)?
                .into_rows_result()
                .map_err(corrupt)?
                .maybe_first_row::<(i64,)>()
                .map_err(corrupt)?;
            row.map(|(ms,)| u64::try_from(ms).map_err(|_| corrupt(format!("negative expiry {ms}"))))
                .transpose()
        })
        .await
    }

    async fn end_session(&self, holder: &str) -> Result<(), StoreError> {
        self.bounded(async {
            self.session
                .execute_unpaged(&self.st.end_session, (self.clock.next(), holder))
                .await
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn claim_of(&self, slot: u32) -> Result<Option<SlotClaim>, StoreError> {
        let key = slot_key(slot)?;
        self.bounded(async {
            let row = self
                .session
                .execute_unpaged(&self.st.claim_of, (key,))
                .await
                .map_err(unavailable)?
                .into_rows_result()
                .map_err(corrupt)?
                .maybe_first_row::<(String, i64, bool)>()
                .map_err(corrupt)?;
            row.map(|(holder, epoch, released)| {
                Ok(SlotClaim {
                    holder,
                    epoch: u64::try_from(epoch)
                        .map_err(|_| corrupt(format!("negative epoch {epoch}")))?,
                    released,
                })
            })
            .transpose()
        })
        .await
    }

    async fn claim(
        &self,
        slot: u32,
        expected: Option<&SlotClaim>,
        holder: &str,
    ) -> Result<ClaimOutcome, StoreError> {
        let key = slot_key(slot)?;
        self.bounded(async {
            let (result, epoch) = match expected {
                None => (
                    self.session
                        .execute_unpaged(&self.st.claim_new, (key, holder))
                        .await,
                    1,
                ),
                Some(c) => {
                    let epoch = c.epoch.saturating_add(1);
                    let values = (
                        holder,
                        epoch_value(epoch)?,
                        key,
                        c.holder.as_str(),
                        epoch_value(c.epoch)?,
                        c.released,
                    );
                    (
                        self.session
                            .execute_unpaged(&self.st.claim_from, values)
                            .await,
                        epoch,
                    )
                }
            };
            let lwt = parse_lwt(result.map_err(unavailable)?, true)?;
            Ok(if lwt.applied {
                ClaimOutcome::Claimed { epoch }
            } else {
                ClaimOutcome::Lost(lwt.current)
            })
        })
        .await
    }

    async fn release(&self, slot: u32, holder: &str, epoch: u64) -> Result<bool, StoreError> {
        let key = slot_key(slot)?;
        let epoch = epoch_value(epoch)?;
        self.bounded(async {
            let result = self
                .session
                .execute_unpaged(&self.st.release, (key, holder, epoch))
                .await
                .map_err(unavailable)?;
            Ok(parse_lwt(result, false)?.applied)
        })
        .await
    }
}
