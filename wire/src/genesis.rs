//! Dev-genesis constants of qfc-node (`--dev`, chain 9000): funded accounts,
//! the faucet key and the dev validator key, and the genesis block.

use crate::block::{Block, BlockHeader};
use crate::tx::address_of_secret;
use crate::{Address, U256};

pub use crate::dev::{
    DEV_CHAIN_ID, DEV_VALIDATOR_COUNT, DEV_VALIDATOR_SECRET, FAUCET_ADDRESS_HEX, FAUCET_SECRET,
    GENESIS_BALANCE_WEI, GENESIS_EXTRA_DATA, OTHER_VALIDATOR_ADDRESSES,
};

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
