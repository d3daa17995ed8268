//! JSON-RPC over HTTP and WebSocket on one port (jsonrpsee 0.22), with
//! qfc-node's method names and error codes (-32602 invalid params, -32000
//! execution errors, -32603 internal). Every call is counted per method.

use crate::chain::{Chain, ChainError};
use crate::metrics::Counters;
use jsonrpsee::server::{RpcModule, Server, ServerHandle};
use jsonrpsee::types::{ErrorObjectOwned, Params};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use wire::{Address, Block, Hash, Transaction, U256};

/// What the RPC handlers share.
pub struct RpcCtx {
    pub chain: Arc<Chain>,
    pub counters: Arc<Counters>,
    pub peer_id: Option<String>,
    pub is_validator: bool,
}

type RpcResult<T> = Result<T, ErrorObjectOwned>;

fn invalid(msg: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(-32602, msg.into(), None::<()>)
}

fn execution(msg: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(-32000, msg.into(), None::<()>)
}

fn internal(e: ChainError) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(-32603, e.to_string(), None::<()>)
}

fn quantity(v: u64) -> String {
    format!("{v:#x}")
}

fn parse_address(s: &str) -> RpcResult<Address> {
    Address::from_hex(s).ok_or_else(|| {
        invalid(format!(
            "Invalid address {s}: expected 0x followed by 40 hex digits"
        ))
    })
}

fn parse_hash(s: &str) -> RpcResult<Hash> {
    let t = s.strip_prefix("0x").unwrap_or(s);
    hex::decode(t)
        .ok()
        .and_then(|b| Hash::from_slice(&b))
        .ok_or_else(|| {
            invalid(format!(
                "Invalid hash {s}: expected 0x followed by 64 hex digits"
            ))
        })
}

/// A block tag or number: `latest`, `pending`, `earliest`, `safe`, `finalized`, or a quantity.
fn parse_block_tag(chain: &Chain, s: &str) -> RpcResult<u64> {
    match s {
        "latest" | "pending" | "safe" | "finalized" => Ok(chain.head().0),
        "earliest" => Ok(0),
        q => u64::from_str_radix(q.strip_prefix("0x").unwrap_or(q), 16).map_err(|_| {
            invalid(format!(
                "Invalid block number {q}: expected a hex quantity or a tag such as latest"
            ))
        }),
    }
}

fn tx_json(tx: &Transaction, loc: Option<(u64, Hash, u32)>) -> Value {
    json!({
        "hash": tx.hash().to_string(),
        "nonce": quantity(tx.nonce),
        "from": tx.sender().to_string(),
        "to": tx.to.map(|a| a.to_string()),
        "value": tx.value.to_quantity(),
        "gas": quantity(tx.gas_limit),
        "gasPrice": tx.gas_price.to_quantity(),
        "input": format!("0x{}", hex::encode(&tx.data)),
        "chainId": quantity(tx.chain_id),
        // qfc-node splits the Ed25519 signature into r/s with v = 0x1b and type 0x0.
        "r": format!("0x{}", hex::encode(&tx.signature[..32])),
        "s": format!("0x{}", hex::encode(&tx.signature[32..])),
        "v": "0x1b",
        "type": "0x0",
        "blockNumber": loc.map(|l| quantity(l.0)),
        "blockHash": loc.map(|l| l.1.to_string()),
        "transactionIndex": loc.map(|l| quantity(l.2 as u64)),
    })
}

fn block_json(b: &Block, full: bool) -> Value {
    let h = b.hash();
    let txs: Vec<Value> = b
        .transactions
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if full {
                tx_json(t, Some((b.header.number, h, i as u32)))
            } else {
                json!(t.hash().to_string())
            }
        })
        .collect();
    json!({
        "number": quantity(b.header.number),
        "hash": h.to_string(),
        "parentHash": b.header.parent_hash.to_string(),
        "stateRoot": b.header.state_root.to_string(),
        "transactionsRoot": b.header.transactions_root.to_string(),
        "receiptsRoot": b.header.receipts_root.to_string(),
        "miner": b.header.producer.to_string(),
        // qfc-node returns the header timestamp as is: milliseconds.
        "timestamp": quantity(b.header.timestamp),
        "gasLimit": quantity(b.header.gas_limit),
        "gasUsed": quantity(b.header.gas_used),
        "extraData": format!("0x{}", hex::encode(&b.header.extra_data)),
        "size": quantity(b.encode().len() as u64),
        // Fields qfc-node adds for ethers.js.
        "difficulty": "0x0",
        "totalDifficulty": "0x0",
        "nonce": "0x0000000000000000",
        "sha3Uncles": "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347",
        "logsBloom": format!("0x{}", "00".repeat(256)),
        "baseFeePerGas": "0x0",
        "transactions": txs,
    })
}

/// Register `name`, counting calls and errors.
fn method<F, T>(m: &mut RpcModule<RpcCtx>, name: &'static str, f: F) -> anyhow::Result<()>
where
    F: Fn(Params<'_>, &RpcCtx) -> RpcResult<T> + Send + Sync + 'static,
    T: serde::Serialize + Clone + Send + 'static,
{
    m.register_method(name, move |p, ctx| {
        ctx.counters.rpc_call(name);
        let r = f(p, ctx);
        if r.is_err() {
            ctx.counters.rpc_error(name);
        }
        r
    })?;
    Ok(())
}

/// Build the RPC module; `admin` adds `lab_flush` and `lab_compact`.
pub fn module(ctx: RpcCtx, admin: bool) -> anyhow::Result<RpcModule<RpcCtx>> {
    let mut m = RpcModule::new(ctx);
    method(&mut m, "eth_chainId", |_, c| {
        Ok(quantity(c.chain.chain_id()))
    })?;
    method(&mut m, "net_version", |_, c| {
        Ok(c.chain.chain_id().to_string())
    })?;
    method(&mut m, "web3_clientVersion", |_, _| {
        Ok(format!("qfc-refnode/{}", env!("CARGO_PKG_VERSION")))
    })?;
    method(&mut m, "eth_syncing", |_, _| Ok(false))?;
    method(&mut m, "eth_gasPrice", |_, _| {
        Ok(quantity(wire::tx::MIN_GAS_PRICE))
    })?;
    method(&mut m, "eth_blockNumber", |_, c| {
        Ok(quantity(c.chain.head().0))
    })?;
    // No contracts in qfc-refnode: every account is code-less, every call a transfer.
    method(&mut m, "eth_getCode", |_, _| Ok("0x"))?;
    method(&mut m, "eth_estimateGas", |_, _| {
        Ok(quantity(wire::tx::TRANSFER_GAS))
    })?;
    method(&mut m, "eth_getBalance", |p, c| {
        let mut s = p.sequence();
        let a: String = s.next()?;
        Ok(c.chain.account(&parse_address(&a)?).balance.to_quantity())
    })?;
    method(&mut m, "eth_getTransactionCount", |p, c| {
        let mut s = p.sequence();
        let a = parse_address(&s.next::<String>()?)?;
        let tag: Option<String> = s.optional_next()?;
        Ok(quantity(match tag.as_deref() {
            Some("pending") => c.chain.pending_nonce(&a),
            _ => c.chain.account(&a).nonce,
        }))
    })?;
    method(&mut m, "eth_getBlockByNumber", |p, c| {
        let mut s = p.sequence();
        let n = parse_block_tag(&c.chain, &s.next::<String>()?)?;
        let full: Option<bool> = s.optional_next()?;
        Ok(c.chain
            .block_by_number(n)
            .map_err(internal)?
            .map(|b| block_json(&b, full.unwrap_or(false))))
    })?;
    method(&mut m, "eth_getBlockByHash", |p, c| {
        let mut s = p.sequence();
        let h = parse_hash(&s.next::<String>()?)?;
        let full: Option<bool> = s.optional_next()?;
        Ok(c.chain
            .block_by_hash(&h)
            .map_err(internal)?
            .map(|b| block_json(&b, full.unwrap_or(false))))
    })?;
    method(&mut m, "eth_sendRawTransaction", |p, c| {
        let raw: String = p.one()?;
        let t = raw.strip_prefix("0x").unwrap_or(&raw);
        let bytes = hex::decode(t).map_err(|e| invalid(e.to_string()))?;
        // qfc-node falls back to Ethereum RLP here; the reference node does not.
        let tx = Transaction::decode(&bytes)
            .map_err(|e| invalid(format!("Failed to decode transaction: {e}")))?;
        let h = c.chain.add_tx(tx).map_err(|e| execution(e.to_string()))?;
        Ok(h.to_string())
    })?;
    method(&mut m, "eth_getTransactionByHash", |p, c| {
        let h = parse_hash(&p.one::<String>()?)?;
        if let Some(l) = c.chain.tx_location(&h).map_err(internal)? {
            return Ok(Some(tx_json(
                &l.tx,
                Some((l.block_number, l.block_hash, l.receipt.tx_index)),
            )));
        }
        Ok(c.chain.pending_tx(&h).map(|t| tx_json(&t, None)))
    })?;
    method(&mut m, "eth_getTransactionReceipt", |p, c| {
        let h = parse_hash(&p.one::<String>()?)?;
        Ok(c.chain.tx_location(&h).map_err(internal)?.map(|l| {
            json!({
                "transactionHash": h.to_string(),
                "transactionIndex": quantity(l.receipt.tx_index as u64),
                "blockHash": l.block_hash.to_string(),
                "blockNumber": quantity(l.block_number),
                "from": l.tx.sender().to_string(),
                "to": l.tx.to.map(|a| a.to_string()),
                "cumulativeGasUsed": quantity(l.receipt.cumulative_gas_used),
                "gasUsed": quantity(l.receipt.gas_used),
                "contractAddress": l.receipt.contract_address.map(|a| a.to_string()),
                "logs": [],
                "logsBloom": format!("0x{}", hex::encode(l.receipt.logs_bloom)),
                "status": if matches!(l.receipt.status, wire::ReceiptStatus::Success) { "0x1" } else { "0x0" },
            })
        }))
    })?;
    method(&mut m, "qfc_nodeInfo", |_, c| {
        Ok(json!({
            "version": env!("CARGO_PKG_VERSION"),
            "chainId": quantity(c.chain.chain_id()),
            "peerCount": c.counters.peers(),
            "isValidator": c.is_validator,
            "syncing": false,
            "peerId": c.peer_id,
            "blockNumber": quantity(c.chain.head().0),
        }))
    })?;
    method(&mut m, "qfc_requestFaucet", |p, c| {
        if c.chain.chain_id() != wire::genesis::DEV_CHAIN_ID {
            return Err(execution("Faucet only available in dev mode"));
        }
        let mut s = p.sequence();
        let to = parse_address(&s.next::<String>()?)?;
        let amount: String = s.next()?;
        let value = match amount.strip_prefix("0x") {
            Some(h) => u128::from_str_radix(h, 16)
                .map_err(|e| invalid(format!("Invalid hex amount: {e}")))?,
            None => amount
                .parse::<u128>()
                .map_err(|e| invalid(format!("Invalid amount: {e}")))?,
        };
        let faucet = wire::genesis::faucet_address();
        let tx = Transaction::transfer(
            c.chain.chain_id(),
            c.chain.pending_nonce(&faucet),
            to,
            U256::from_u128(value),
            U256::from_u64(wire::tx::MIN_GAS_PRICE),
        )
        .signed(&wire::genesis::FAUCET_SECRET);
        let h = c.chain.add_tx(tx).map_err(|e| execution(e.to_string()))?;
        Ok(json!({ "txHash": h.to_string(), "amount": value.to_string(), "to": to.to_string() }))
    })?;
    if admin {
        for (name, flush) in [("lab_flush", true), ("lab_compact", false)] {
            m.register_blocking_method(name, move |_, c| {
                c.counters.rpc_call(name);
                let s = c.chain.storage();
                let r = if flush {
                    s.flush_all()
                } else {
                    s.flush_all().and_then(|_| s.compact_all())
                };
                r.map(|_| true).map_err(|e| {
                    c.counters.rpc_error(name);
                    ErrorObjectOwned::owned(-32603, e.to_string(), None::<()>)
                })
            })?;
        }
    }
    Ok(m)
}

/// Bind `addr` and serve `module`; returns the bound address and the handle.
pub async fn serve(
    addr: SocketAddr,
    module: RpcModule<RpcCtx>,
) -> anyhow::Result<(SocketAddr, ServerHandle)> {
    use anyhow::Context as _;
    let server = Server::builder()
        .build(addr)
        .await
        .with_context(|| format!("cannot bind JSON-RPC on {addr}: choose another --rpc-addr"))?;
    let local = server.local_addr()?;
    Ok((local, server.start(module)))
}
