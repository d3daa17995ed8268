//! libp2p swarm like qfc-node's: TCP + Noise + Yamux, identify
//! (`/qfc/1.0.0`), ping, and request-response `/qfc/sync/1` with the
//! 4-byte big-endian length-prefixed borsh codec from `wire`.
//!
//! The server logs every request and every response at INFO with `{:?}`,
//! exactly the costly pattern of T1 finding 2 (`--log-level warn` removes
//! it). [`fetch`] is a minimal client used by tests.

use crate::chain::Chain;
use crate::metrics::Counters;
use futures::{AsyncRead, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    identify, identity, noise, ping, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm,
};
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use wire::sync::{frame, FrameKind, MAX_RANGE_SPAN, REQUEST_TIMEOUT_SECS, SYNC_PROTOCOL};
use wire::{SyncRequest, SyncResponse};

/// The `/qfc/sync/1` codec: u32 big-endian length, then borsh.
#[derive(Debug, Clone, Default)]
pub struct SyncCodec;

async fn write_body<T: AsyncWrite + Unpin + Send>(io: &mut T, body: &[u8]) -> io::Result<()> {
    io.write_all(&frame(body)).await?;
    io.flush().await
}

fn invalid(e: wire::WireError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

#[async_trait::async_trait]
impl request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = SyncRequest;
    type Response = SyncResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        SyncRequest::decode(&wire::sync::read_frame_async(io, FrameKind::Request).await?)
            .map_err(invalid)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        SyncResponse::decode(&wire::sync::read_frame_async(io, FrameKind::Response).await?)
            .map_err(invalid)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: SyncRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_body(io, &req.encode()).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: SyncResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_body(io, &res.encode()).await
    }
}

/// The node's behaviours (gossipsub and kademlia of qfc-node are left out).
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub sync: request_response::Behaviour<SyncCodec>,
}

/// Build a swarm with `key` (TCP + Noise + Yamux).
pub fn build_swarm(key: identity::Keypair) -> anyhow::Result<Swarm<Behaviour>> {
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(|key| Behaviour {
            identify: identify::Behaviour::new(identify::Config::new(
                "/qfc/1.0.0".into(),
                key.public(),
            )),
            ping: ping::Behaviour::new(ping::Config::new()),
            sync: request_response::Behaviour::with_codec(
                SyncCodec,
                [(StreamProtocol::new(SYNC_PROTOCOL), ProtocolSupport::Full)],
                request_response::Config::default()
                    .with_request_timeout(Duration::from_secs(REQUEST_TIMEOUT_SECS)),
            ),
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    Ok(swarm)
}

/// Answer one request from the chain, as qfc-node's sync manager does.
pub fn respond(chain: &Chain, req: &SyncRequest) -> SyncResponse {
    let one = |r: Result<Option<wire::Block>, crate::chain::ChainError>| match r {
        Ok(Some(b)) => SyncResponse::Block(b.encode()),
        Ok(None) => SyncResponse::NotFound,
        Err(e) => SyncResponse::Error(e.to_string()),
    };
    match req {
        SyncRequest::GetBlockByHash(h) => one(chain.block_by_hash(h)),
        SyncRequest::GetBlockByNumber(n) => one(chain.block_by_number(*n)),
        SyncRequest::GetBlockRange { start, end } => {
            let mut blocks = Vec::new();
            for n in *start..=(*end).min(start.saturating_add(MAX_RANGE_SPAN)) {
                match chain.block_by_number(n) {
                    Ok(Some(b)) => blocks.push(b.encode()),
                    Ok(None) => break,
                    Err(e) => return SyncResponse::Error(e.to_string()),
                }
            }
            if blocks.is_empty() {
                SyncResponse::NotFound
            } else {
                SyncResponse::Blocks(blocks)
            }
        }
        SyncRequest::GetStatus => {
            let (block_number, block_hash) = chain.head();
            SyncResponse::Status {
                block_number,
                block_hash,
                genesis_hash: chain.genesis_hash(),
            }
        }
    }
}

/// Listen on `listen`, dial `bootnodes`, answer sync requests until
/// `cancel`. `on_listen` receives the first listen address.
pub async fn run(
    mut swarm: Swarm<Behaviour>,
    listen: Multiaddr,
    bootnodes: Vec<Multiaddr>,
    chain: Arc<Chain>,
    counters: Arc<Counters>,
    cancel: CancellationToken,
    on_listen: tokio::sync::oneshot::Sender<Multiaddr>,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    swarm
        .listen_on(listen.clone())
        .with_context(|| format!("cannot listen on {listen}: choose another --p2p-port"))?;
    for b in bootnodes {
        if let Err(e) = swarm.dial(b.clone()) {
            warn!("Failed to dial bootnode {b}: {e}");
        }
    }
    let mut on_listen = Some(on_listen);
    loop {
        let ev = tokio::select! {
            _ = cancel.cancelled() => break,
            ev = swarm.select_next_some() => ev,
        };
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                info!("Listening on {address}");
                if let Some(tx) = on_listen.take() {
                    let _ = tx.send(address);
                }
            }
            SwarmEvent::ConnectionEstablished { .. } | SwarmEvent::ConnectionClosed { .. } => {
                counters
                    .peers
                    .store(swarm.connected_peers().count() as u64, Ordering::Relaxed);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            })) => {
                info!("Handling sync request from {}: {:?}", peer, request);
                let response = respond(&chain, &request);
                info!("Sending sync response: {:?}", response);
                counters.sync_responses.fetch_add(1, Ordering::Relaxed);
                if swarm
                    .behaviour_mut()
                    .sync
                    .send_response(channel, response)
                    .is_err()
                {
                    warn!("Failed to send sync response to {peer}: the stream is closed");
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Client: connect to `addr`, send `requests` over `/qfc/sync/1` and return
/// the responses in request order. Bounded by `timeout`.
pub async fn fetch(
    addr: Multiaddr,
    requests: Vec<SyncRequest>,
    timeout: Duration,
) -> anyhow::Result<Vec<SyncResponse>> {
    use anyhow::{bail, Context as _};
    let mut swarm =
        build_swarm(identity::Keypair::ed25519_from_bytes([7u8; 32]).expect("32-byte key"))?;
    swarm
        .dial(addr.clone())
        .with_context(|| format!("cannot dial {addr}"))?;
    let work = async {
        let mut ids = Vec::new();
        let mut got = std::collections::HashMap::new();
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { peer_id, .. } if ids.is_empty() => {
                    for r in &requests {
                        ids.push(swarm.behaviour_mut().sync.send_request(&peer_id, r.clone()));
                    }
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    bail!("cannot connect to {addr}: {error}")
                }
                SwarmEvent::Behaviour(BehaviourEvent::Sync(ev)) => match ev {
                    request_response::Event::Message {
                        message:
                            request_response::Message::Response {
                                request_id,
                                response,
                            },
                        ..
                    } => {
                        got.insert(request_id, response);
                        if got.len() == ids.len() {
                            return Ok(ids
                                .iter()
                                .map(|i| got.remove(i).expect("every id answered"))
                                .collect());
                        }
                    }
                    request_response::Event::OutboundFailure { error, .. } => {
                        bail!("sync request to {addr} failed: {error}")
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .with_context(|| format!("no sync answer from {addr} within {timeout:?}"))?
}

/// The node's libp2p identity: `[0x01; 32]` in `--dev`, else the validator key.
pub fn node_identity(secret: [u8; 32]) -> identity::Keypair {
    identity::Keypair::ed25519_from_bytes(secret).expect("32-byte ed25519 secret")
}

/// Peer id of the node whose identity secret is `secret`.
pub fn peer_id_of(secret: [u8; 32]) -> PeerId {
    node_identity(secret).public().to_peer_id()
}
