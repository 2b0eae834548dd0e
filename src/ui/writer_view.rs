//! [`WriterView`]: what the item view and the format views are shown of the model jobs (the rationale writer, a
//! format being written, a repair, ARG's attention), read from the app's jobs once per frame.
//!
//! Plain data; it draws nothing, so both `item_view` and `explain` (and the participant view) read it without
//! depending on each other.

use crate::domain::{ItemId, RationaleId};
use crate::formats::Format;
use crate::guidance::faithfulness::ItemSensitivity;
use crate::guidance::train::TokenWeight;
use crate::store::formats::FormatRepairStats;
use crate::writer::LiveRationale;

/// What the item view shows of the rationale writer and the other model jobs.
#[derive(Clone, Debug, Default)]
pub struct WriterView {
    /// Rationales of the shown item being written in this run (streamed text).
    pub live: Vec<LiveRationale>,
    /// A writer job is running.
    pub running: bool,
    /// Some model job (rationale writer, format, repair) is running: buttons that start one are disabled.
    pub llm_busy: bool,
    /// The structured format being written: (rationale revision, format).
    pub rendering: Option<(RationaleId, Format)>,
    /// The repair being written: (feedback row, text so far).
    pub repair: Option<(i64, String)>,
    /// Repairs by format, as the app last read them.
    pub repair_stats: Vec<FormatRepairStats>,
    /// ARG's attention over a news text, as last computed: (item, version, token weights).
    pub attention: Option<(ItemId, i64, Vec<TokenWeight>)>,
    /// The item whose attention is being computed.
    pub attention_loading: Option<ItemId>,
    /// How much ARG leans on each rationale of an item, as last checked: (item, version, per rationale).
    pub faithfulness: Option<(ItemId, i64, Vec<ItemSensitivity>)>,
    /// The item whose faithfulness is being checked.
    pub faithfulness_loading: Option<ItemId>,
}
