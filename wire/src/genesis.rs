//! Dev-genesis constants of qfc-node (`--dev`, chain 9000): funded accounts,
//! the faucet key and the dev validator key, and the genesis block.

use crate::block::{Block, BlockHeader};
use crate::tx::address_of_secret;
use crate::{Address, U256};

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

/// The faucet's address.
pub fn faucet_address() -> Address {
    address_of_secret(&FAUCET_SECRET)
}

/// The dev validator's address.
pub fn dev_validator_address() -> Address {
    address_of_secret(&DEV_VALIDATOR_SECRET)
}

/// Every account funded at dev genesis with [`GENESIS_BALANCE_WEI`]:
/// `0x..01`-`0x..0a`, the dev validator, the other validators, the faucet.
pub fn funded_accounts() -> Vec<(Address, U256)> {
    let bal = U256::from_u128(GENESIS_BALANCE_WEI);
    let mut v: Vec<_> = (1..=10).map(|i| (Address::from_low_u64(i), bal)).collect();
    v.push((dev_validator_address(), bal));
    for a in OTHER_VALIDATOR_ADDRESSES {
        v.push((Address::from_hex(a).expect("constant address"), bal));
    }
    v.push((faucet_address(), bal));
    v
}

/// The dev genesis block (number 0, timestamp 0, zero roots).
pub fn genesis_block() -> Block {
    Block {
        header: BlockHeader {
            extra_data: GENESIS_EXTRA_DATA.to_vec(),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faucet_address_matches_qfc_node() {
        assert_eq!(faucet_address().to_string(), FAUCET_ADDRESS_HEX);
    }

    #[test]
    fn dev_validator_address_matches_genesis() {
        // qfc-node's dev genesis lists the [0x01; 32] validator at this address.
        assert_eq!(
            dev_validator_address().to_string(),
            "0x1bff2fcb945733cc3012879cb9fab07928667062"
        );
    }

    #[test]
    fn funded_accounts_hold_1e27() {
        let acc = funded_accounts();
        assert_eq!(acc.len(), 15);
        assert_eq!(
            acc[0].0.to_string(),
            "0x0000000000000000000000000000000000000001"
        );
        assert_eq!(
            acc[9].0.to_string(),
            "0x000000000000000000000000000000000000000a"
        );
        assert!(acc
            .iter()
            .all(|(_, b)| b.to_string() == "1000000000000000000000000000"));
    }

    #[test]
    fn genesis_block_is_deterministic() {
        let g = genesis_block();
        assert_eq!(g.encode().len(), 400 + GENESIS_EXTRA_DATA.len());
        assert_eq!(g.hash(), genesis_block().hash());
    }
}
