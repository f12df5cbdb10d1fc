//! Transforms as fit-on-train / apply-anywhere types. Stateless ones (`Convert`, `RoundToLevels`,
//! `Log1p`) only apply; fitted ones (`QuantileBins`, `StandardScaler`, `OneHot`, `Ordinal`,
//! `LabelEncoder`) are fitted on training rows into a separate, serializable type.

mod bins;
mod encode;
mod numeric;
mod scale;

pub use bins::{QuantileBins, QuantileBinsFitted, quantile_sorted};
pub use encode::{LabelEncoder, OneHot, OneHotFitted, Ordinal, OrdinalFitted, UNKNOWN_SLOT};
pub use numeric::{Convert, Log1p, RoundToLevels};
pub use scale::{StandardScaler, StandardScalerFitted};
