//! A trial's data loaded on its device, shared by the trials of this process that use the same
//! data settings and seed at the same time (a grid over learning rates, activations, models or
//! optimizers): one copy of the pixels in memory rather than one per trial. It is freed when
//! the last trial holding it ends.

use super::eval::DeviceSet;
use crate::config::DataConfig;
use crate::data::{self, PIXELS, Splits};
use crate::error::Result;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// The splits of one data config and seed, their pixels on one device.
pub struct Loaded<B: Backend> {
    /// The training pixels, `[n, 784]`.
    pub x_train: Tensor<B, 2>,
    /// The validation split.
    pub val: DeviceSet<B>,
    /// The test split.
    pub test: DeviceSet<B>,
    /// Labels, raw bytes and sizes of the splits (their normalised pixels are the tensors).
    pub splits: Splits,
}

type Key = (String, u64, TypeId, String);
type Cache = Mutex<HashMap<Key, Weak<dyn Any + Send + Sync>>>;

/// The data of `cfg` and `seed` on `device`: the copy another running trial loaded, or a new
/// one. A missing or broken file is an `Error::Data`, as from [`data::prepare`].
pub fn load<B: Backend>(cfg: &DataConfig, seed: u64, device: &B::Device) -> Result<Arc<Loaded<B>>> {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let key = (
        serde_json::to_string(cfg)?,
        seed,
        TypeId::of::<B>(),
        format!("{device:?}"),
    );
    // Held while loading, so a trial that needs the same data waits for it instead of loading
    // a second copy.
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .expect("data cache");
    let held = cache.get(&key).and_then(Weak::upgrade);
    if let Some(loaded) = held.and_then(|a| a.downcast::<Loaded<B>>().ok()) {
        return Ok(loaded);
    }
    cache.retain(|_, w| w.strong_count() > 0);
    let mut splits = data::prepare(cfg, seed)?;
    let pixels = std::mem::take(&mut splits.train.x);
    let loaded = Arc::new(Loaded {
        x_train: Tensor::from_data(
            TensorData::new(pixels, [splits.train.len(), PIXELS]),
            device,
        ),
        val: DeviceSet::new(&mut splits.val, device),
        test: DeviceSet::new(&mut splits.test, device),
        splits,
    });
    let any: Arc<dyn Any + Send + Sync> = loaded.clone();
    cache.insert(key, Arc::downgrade(&any));
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::backend::flex::FlexDevice;

    #[test]
    fn trials_with_the_same_data_share_one_copy_until_the_last_ends() {
        let cfg = DataConfig {
            train_size: Some(50),
            ..Default::default()
        };
        let a = load::<Flex>(&cfg, 1, &FlexDevice).unwrap();
        let b = load::<Flex>(&cfg, 1, &FlexDevice).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "same data and seed: one copy");
        let c = load::<Flex>(&cfg, 2, &FlexDevice).unwrap();
        assert!(!Arc::ptr_eq(&a, &c), "another seed splits differently");
        assert_eq!(a.x_train.dims(), [50, PIXELS]);
        let weak = Arc::downgrade(&a);
        drop((a, b));
        assert!(
            weak.upgrade().is_none(),
            "freed with the last trial holding it"
        );
    }
}
