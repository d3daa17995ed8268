//! Dev-network constants of qfc-node (`--dev`, chain 9000): chain id,
//! faucet and validator keys, genesis balances. A leaf: [`crate::genesis`]
//! builds the genesis block from them, and transactions' tests sign with them.

/// Chain id of the dev and test networks.
pub const DEV_CHAIN_ID: u64 = 9000;
/// Ed25519 secret of the faucet account (funded at genesis).
pub const FAUCET_SECRET: [u8; 32] = [0x42; 32];
/// Address of [`FAUCET_SECRET`], as printed in qfc-node's genesis.
pub const FAUCET_ADDRESS_HEX: &str = "0x10d7812fbe50096ae82569fdad35f79628bc0084";
/// Ed25519 secret of the `--dev` validator.
pub const DEV_VALIDATOR_SECRET: [u8; 32] = [0x01; 32];
/// Balance of every funded genesis account: 1e27 wei (1e9 QFC).
pub const GENESIS_BALANCE_WEI: u128 = 1_000_000_000_000_000_000_000_000_000;
/// Extra data of the dev genesis header.
pub const GENESIS_EXTRA_DATA: &[u8] = b"QFC Dev Genesis";
/// Number of validators in dev genesis (a lone dev node wins 1 slot in 4).
pub const DEV_VALIDATOR_COUNT: u32 = 4;
/// The three other dev-genesis validators (keys not public), funded too.
pub const OTHER_VALIDATOR_ADDRESSES: [&str; 3] = [
    "0x8d1dd4291ea7fe924cd4b2e577f6c81f3e4025c8",
    "0x4a737feb30701eb86b708896bf6eff0fb7b2e0b2",
    "0xb560ab667adac60e0c9fd5c48b7d309cdf2be685",
];
