//! The `rpc` workload: a weighted mix of read methods over HTTP JSON-RPC.

use std::sync::Arc;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use crate::engine::Workload;
use crate::http::{quantity, HttpPool};
use crate::model::RpcMethod;
use crate::stats::Fail;

/// One decided JSON-RPC request.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcRequest {
    /// JSON-RPC id (the request's index in the phase).
    pub id: u64,
    /// Method.
    pub method: RpcMethod,
    /// Parameters.
    pub params: Value,
}

/// Weighted read-method mix against one endpoint.
pub struct RpcWorkload {
    pool: Arc<HttpPool>,
    /// (method, cumulative weight), weights > 0 only.
    cumulative: Vec<(RpcMethod, u64)>,
    head: u64,
    addresses: Vec<String>,
}

impl RpcWorkload {
    /// `head`: the block number to draw `eth_getBlockByNumber` from (0..=head);
    /// `addresses`: `0x` addresses to query balances and nonces of.
    pub fn new(
        pool: Arc<HttpPool>,
        mix: &std::collections::BTreeMap<RpcMethod, u32>,
        head: u64,
        addresses: Vec<String>,
    ) -> Self {
        let mut acc = 0u64;
        let cumulative = mix
            .iter()
            .filter(|(_, w)| **w > 0)
            .map(|(m, w)| {
                acc += u64::from(*w);
                (*m, acc)
            })
            .collect();
        let addresses = if addresses.is_empty() {
            vec![format!("0x{}", "00".repeat(20))]
        } else {
            addresses
        };
        Self {
            pool,
            cumulative,
            head,
            addresses,
        }
    }
}

impl Workload for RpcWorkload {
    type Req = RpcRequest;

    fn make(&self, index: u64, rng: &mut ChaCha8Rng) -> RpcRequest {
        let total = self.cumulative.last().map_or(1, |(_, c)| *c);
        let pick = rng.gen_range(0..total);
        let method = self
            .cumulative
            .iter()
            .find(|(_, c)| pick < *c)
            .map_or(RpcMethod::EthBlockNumber, |(m, _)| *m);
        let params = match method {
            RpcMethod::EthGetBlockByNumber => {
                json!([quantity(rng.gen_range(0..=self.head)), false])
            }
            RpcMethod::EthGetBalance | RpcMethod::EthGetTransactionCount => {
                json!([
                    self.addresses[rng.gen_range(0..self.addresses.len())],
                    "latest"
                ])
            }
            _ => json!([]),
        };
        RpcRequest {
            id: index,
            method,
            params,
        }
    }

    async fn execute(&self, req: RpcRequest) -> Result<u64, Fail> {
        self.pool
            .call_discard(req.id, req.method.name(), &req.params)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::collections::BTreeMap;

    fn workload() -> RpcWorkload {
        let pool = Arc::new(HttpPool::new("127.0.0.1:9".parse().unwrap()));
        let mix = BTreeMap::from([
            (RpcMethod::EthBlockNumber, 3),
            (RpcMethod::EthGetBlockByNumber, 1),
            (RpcMethod::NetVersion, 0),
        ]);
        RpcWorkload::new(pool, &mix, 100, vec!["0x01".into(), "0x02".into()])
    }

    #[test]
    fn same_seed_same_sequence_and_weights_hold() {
        let w = workload();
        let gen = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..4000).map(|i| w.make(i, &mut rng)).collect::<Vec<_>>()
        };
        let (a, b, c) = (gen(5), gen(5), gen(6));
        assert_eq!(a, b);
        assert_ne!(a, c);
        let n_block = a
            .iter()
            .filter(|r| r.method == RpcMethod::EthBlockNumber)
            .count();
        assert!((2850..=3150).contains(&n_block), "{n_block}");
        assert!(a.iter().all(|r| r.method != RpcMethod::NetVersion));
    }
}
