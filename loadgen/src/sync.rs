//! The `sync` workload: N libp2p peers (TCP + Noise + Yamux, each its own
//! identity from the seed) sending `/qfc/sync/1` requests (GetBlockRange,
//! GetBlockByNumber, GetStatus) to the node, round robin, with the wire
//! crate's 4-byte big-endian length-prefixed borsh codec; response sizes
//! and kinds are recorded.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use futures::{AsyncRead, AsyncWrite, AsyncWriteExt, StreamExt};
use hdrhistogram::Histogram;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{identity, noise, tcp, yamux, Multiaddr, PeerId, StreamProtocol};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use wire::sync::{frame, FrameKind, MAX_RANGE_SPAN, REQUEST_TIMEOUT_SECS, SYNC_PROTOCOL};
use wire::{SyncRequest, SyncResponse};

use crate::engine::Workload;
use crate::model::SyncRequestKind;
use crate::stats::Fail;
use crate::LoadError;

/// A response and its size on the wire (body, without the 4-byte prefix).
#[derive(Debug, Clone)]
pub struct SizedResponse(pub SyncResponse, pub u64);

/// Client side of the `/qfc/sync/1` codec.
#[derive(Debug, Clone, Default)]
pub struct ClientCodec;

fn invalid(e: wire::WireError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

#[async_trait::async_trait]
impl request_response::Codec for ClientCodec {
    type Protocol = StreamProtocol;
    type Request = SyncRequest;
    type Response = SizedResponse;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<SyncRequest> {
        SyncRequest::decode(&wire::sync::read_frame_async(io, FrameKind::Request).await?)
            .map_err(invalid)
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<SizedResponse> {
        let body = wire::sync::read_frame_async(io, FrameKind::Response).await?;
        let n = body.len() as u64;
        Ok(SizedResponse(
            SyncResponse::decode(&body).map_err(invalid)?,
            n,
        ))
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: SyncRequest,
    ) -> io::Result<()> {
        io.write_all(&frame(&req.encode())).await?;
        io.flush().await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: SizedResponse,
    ) -> io::Result<()> {
        io.write_all(&frame(&res.0.encode())).await?;
        io.flush().await
    }
}

type Reply = oneshot::Sender<Result<SizedResponse, Fail>>;

/// One connected peer, driven by its own task.
pub struct Peer {
    tx: mpsc::Sender<(SyncRequest, Reply)>,
    /// Our peer id.
    pub id: PeerId,
}

/// The libp2p multiaddr of a TCP socket address.
pub fn multiaddr(addr: SocketAddr) -> Multiaddr {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) => libp2p::multiaddr::Protocol::Ip4(v4),
        std::net::IpAddr::V6(v6) => libp2p::multiaddr::Protocol::Ip6(v6),
    };
    Multiaddr::empty()
        .with(ip)
        .with(libp2p::multiaddr::Protocol::Tcp(addr.port()))
}

/// Connects a peer with identity `secret` to `addr` (within 10 s).
pub async fn connect_peer(
    secret: [u8; 32],
    addr: SocketAddr,
    cancel: CancellationToken,
) -> Result<Peer, LoadError> {
    let fail = |why: String| LoadError::Workload {
        workload: "sync",
        why,
    };
    let key = identity::Keypair::ed25519_from_bytes(secret)
        .map_err(|e| fail(format!("bad peer key: {e}")))?;
    let id = key.public().to_peer_id();
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| fail(format!("cannot build the TCP transport: {e}")))?
        .with_behaviour(|_| {
            request_response::Behaviour::with_codec(
                ClientCodec,
                [(
                    StreamProtocol::new(SYNC_PROTOCOL),
                    ProtocolSupport::Outbound,
                )],
                request_response::Config::default()
                    .with_request_timeout(Duration::from_secs(REQUEST_TIMEOUT_SECS))
                    .with_max_concurrent_streams(1024),
            )
        })
        .map_err(|e| fail(format!("cannot build the sync behaviour: {e}")))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    swarm
        .dial(multiaddr(addr))
        .map_err(|e| fail(format!("cannot dial {addr}: {e}")))?;
    let remote = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { peer_id, .. } => return Ok(peer_id),
                SwarmEvent::OutgoingConnectionError { error, .. } => return Err(error.to_string()),
                _ => {}
            }
        }
    })
    .await
    .map_err(|_| {
        fail(format!(
            "no libp2p connection to {addr} within 10 s; is the p2p port right?"
        ))
    })?
    .map_err(|e| fail(format!("cannot connect to {addr}: {e}")))?;
    let (tx, mut rx) = mpsc::channel::<(SyncRequest, Reply)>(4096);
    tokio::spawn(async move {
        let mut pending: HashMap<OutboundRequestId, Reply> = HashMap::new();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                cmd = rx.recv() => match cmd {
                    Some((req, reply)) => {
                        let rid = swarm.behaviour_mut().send_request(&remote, req);
                        pending.insert(rid, reply);
                    }
                    None => break,
                },
                ev = swarm.select_next_some() => match ev {
                    SwarmEvent::Behaviour(request_response::Event::Message {
                        message: request_response::Message::Response { request_id, response }, ..
                    }) => {
                        if let Some(r) = pending.remove(&request_id) {
                            let _ = r.send(Ok(response));
                        }
                    }
                    SwarmEvent::Behaviour(request_response::Event::OutboundFailure { request_id, error, .. }) => {
                        if let Some(r) = pending.remove(&request_id) {
                            let f = match error {
                                request_response::OutboundFailure::Timeout => Fail::Timeout,
                                request_response::OutboundFailure::ConnectionClosed => Fail::Other("sync_connection_closed"),
                                request_response::OutboundFailure::DialFailure => Fail::Connect,
                                request_response::OutboundFailure::UnsupportedProtocols => Fail::Other("sync_unsupported"),
                                _ => Fail::Io,
                            };
                            let _ = r.send(Err(f));
                        }
                    }
                    _ => {}
                },
            }
        }
    });
    Ok(Peer { tx, id })
}

#[derive(Default)]
struct Tally {
    kinds: BTreeMap<&'static str, u64>,
    blocks: u64,
    sizes: Option<Histogram<u64>>,
}

/// Requests spread round robin over connected peers.
pub struct SyncWorkload {
    peers: Vec<Peer>,
    kind: SyncRequestKind,
    head: u64,
    tally: Mutex<Tally>,
}

/// Decided request and the peer to send it from.
pub struct SyncReq {
    peer: usize,
    req: SyncRequest,
}

impl SyncWorkload {
    /// `head`: highest block number to ask for.
    pub fn new(peers: Vec<Peer>, kind: SyncRequestKind, head: u64) -> Self {
        Self {
            peers,
            kind,
            head,
            tally: Mutex::new(Tally::default()),
        }
    }

    /// The request for index `i` (pure apart from `rng`).
    pub fn request(kind: SyncRequestKind, head: u64, rng: &mut ChaCha8Rng) -> SyncRequest {
        let kind = match kind {
            SyncRequestKind::Mixed => [
                SyncRequestKind::Range,
                SyncRequestKind::Number,
                SyncRequestKind::Status,
            ][rng.gen_range(0..3)],
            k => k,
        };
        match kind {
            SyncRequestKind::Range => {
                let start = rng.gen_range(0..=head.saturating_sub(MAX_RANGE_SPAN));
                SyncRequest::GetBlockRange {
                    start,
                    end: start + MAX_RANGE_SPAN,
                }
            }
            SyncRequestKind::Number => SyncRequest::GetBlockByNumber(rng.gen_range(0..=head)),
            _ => SyncRequest::GetStatus,
        }
    }

    /// Response kinds, blocks received and response sizes.
    pub fn details(&self) -> BTreeMap<String, serde_json::Value> {
        let t = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        let mut d = BTreeMap::new();
        d.insert("peers".into(), serde_json::json!(self.peers.len()));
        d.insert("responses_by_kind".into(), serde_json::json!(t.kinds));
        d.insert(
            "responses".into(),
            serde_json::json!(t.kinds.values().sum::<u64>()),
        );
        d.insert("blocks_received".into(), serde_json::json!(t.blocks));
        if let Some(h) = &t.sizes {
            let s = crate::stats::latency_summary(h);
            d.insert(
                "response_bytes".into(),
                serde_json::json!({"p50": s.p50_us, "p99": s.p99_us, "max": s.max_us, "mean": s.mean_us}),
            );
        }
        d
    }
}

impl Workload for SyncWorkload {
    type Req = SyncReq;

    fn make(&self, index: u64, rng: &mut ChaCha8Rng) -> SyncReq {
        SyncReq {
            peer: (index % self.peers.len().max(1) as u64) as usize,
            req: Self::request(self.kind, self.head, rng),
        }
    }

    async fn execute(&self, req: SyncReq) -> Result<u64, Fail> {
        let (tx, rx) = oneshot::channel();
        self.peers[req.peer]
            .tx
            .send((req.req, tx))
            .await
            .map_err(|_| Fail::Other("sync_peer_gone"))?;
        let SizedResponse(resp, n) = rx.await.map_err(|_| Fail::Other("sync_peer_gone"))??;
        let (kind, blocks) = match &resp {
            SyncResponse::Block(_) => ("block", 1),
            SyncResponse::Blocks(b) => ("blocks", b.len() as u64),
            SyncResponse::NotFound => ("not_found", 0),
            SyncResponse::Status { .. } => ("status", 0),
            SyncResponse::Error(_) => ("error", 0),
        };
        {
            let mut t = self.tally.lock().unwrap_or_else(|p| p.into_inner());
            *t.kinds.entry(kind).or_default() += 1;
            t.blocks += blocks;
            t.sizes
                .get_or_insert_with(|| {
                    Histogram::new_with_bounds(1, 64 << 20, 3).expect("static bounds")
                })
                .saturating_record(n.max(1));
        }
        if kind == "error" {
            return Err(Fail::Other("sync_error_response"));
        }
        Ok(n)
    }
}

/// Peer identity `i` of a phase, from the seed.
pub fn peer_secret(seed: u64, phase: &str, i: u32) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"qfc-lab loadgen peer v1\0");
    h.update(&seed.to_le_bytes());
    h.update(phase.as_bytes());
    h.update(&i.to_le_bytes());
    *h.finalize().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn requests_follow_kind_and_head() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..100 {
            match SyncWorkload::request(SyncRequestKind::Range, 100, &mut rng) {
                SyncRequest::GetBlockRange { start, end } => {
                    assert!(start <= 68 && end == start + 32)
                }
                other => panic!("{other:?}"),
            }
        }
        let mixed: Vec<_> = (0..300)
            .map(|_| SyncWorkload::request(SyncRequestKind::Mixed, 10, &mut rng))
            .collect();
        assert!(mixed.iter().any(|r| matches!(r, SyncRequest::GetStatus)));
        assert!(mixed
            .iter()
            .any(|r| matches!(r, SyncRequest::GetBlockByNumber(n) if *n <= 10)));
        // Head below the span: ranges start at 0.
        assert!(matches!(
            SyncWorkload::request(SyncRequestKind::Range, 5, &mut rng),
            SyncRequest::GetBlockRange { start: 0, end: 32 }
        ));
    }

    #[test]
    fn multiaddr_of_loopback() {
        assert_eq!(
            multiaddr("127.0.0.1:4001".parse().unwrap()).to_string(),
            "/ip4/127.0.0.1/tcp/4001"
        );
    }
}
