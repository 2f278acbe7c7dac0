//! How much an untrusted file may make lrp read and allocate.

/// Limits on every quantity that comes from an untrusted file: file sizes
/// by kind, sequence lengths and counts, text line lengths, and what an npz
/// archive may decompress to. Each is checked before anything is allocated
/// from it; going over is an [`Error::Limit`](crate::Error::Limit) naming
/// the file and the limit.
///
/// The defaults suit a 2-core, 24 GB machine: together they keep one run
/// of the CLI on hostile input under about 4 GB. The model's dimensions
/// have fixed limits of their own in `ModelConfig::validate` (65,536 per
/// dimension, 16,777,216 vocabulary rows).
///
/// How long a sequence may be depends on the model and the method, so it
/// is bounded by what explaining it costs ([`Limits::check_cost`], with an
/// `lrp_models::Cost` estimated from the model's widths): its memory
/// ([`Limits::max_memory_bytes`]) and its work
/// ([`Limits::max_work`]). [`Limits::max_tokens`] is only a sanity cap.
///
/// ```
/// let mut limits = lrp_io::Limits::default();
/// limits.max_work = 100_000_000; // occlusion on longer documents than the default allows
/// assert_eq!(limits.max_sequences, 100_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Bytes of a model's `config.json` (default 1 MiB).
    pub max_config_bytes: u64,
    /// Bytes of a weights file, `.safetensors` or `.npz` (default 1 GiB).
    pub max_weights_bytes: u64,
    /// Bytes of a `vocab.txt` (default 64 MiB).
    pub max_vocab_bytes: u64,
    /// Bytes of an input vectors file, `.npy` or `.npz` (default 1 GiB).
    pub max_vectors_bytes: u64,
    /// Bytes of a text input: a file of lines, or standard input (default 64 MiB).
    pub max_text_bytes: u64,
    /// Bytes of a labelled data file and of the files that go with it (default 256 MiB).
    pub max_data_bytes: u64,
    /// Bytes of one line of text input (default 100,000).
    pub max_line_bytes: usize,
    /// Positions (tokens or vectors) of one sequence, `T` (default
    /// 10,000,000: a sanity cap; the cost limits decide).
    pub max_tokens: usize,
    /// Sequences in one input: lines, sentences or arrays (default 100,000).
    pub max_sequences: usize,
    /// Positions of all the sequences of one input together (default 2,000,000).
    pub max_total_tokens: usize,
    /// Decompressed bytes of one npz entry (default 1 GiB).
    pub max_npz_entry_bytes: u64,
    /// Decompressed bytes of all the entries of one npz archive (default 2 GiB).
    pub max_npz_total_bytes: u64,
    /// Decompressed bytes per compressed byte of an npz entry larger than
    /// 1 MiB (default 100; float data compresses about 1.1 : 1, a zip bomb
    /// 1,000 : 1).
    pub max_npz_ratio: u64,
    /// Nodes of an imported graph (ONNX), counting the nodes of its
    /// subgraphs (default 100,000).
    pub max_graph_nodes: usize,
    /// Attributes of the nodes of an imported graph (ONNX), subgraphs
    /// included (default 200,000; each takes 1,640 bytes decoded, 2 in
    /// the file).
    pub max_graph_attributes: usize,
    /// Other entries of an imported graph (ONNX): initializers, inputs,
    /// outputs, value_info, names, dims, metadata, every integer of an
    /// integer list (default 1,000,000; each takes at most 336 bytes
    /// decoded). Float data is not counted: it takes no more memory than
    /// file.
    pub max_graph_entries: usize,
    /// Bytes of memory one explanation may need, as `lrp_models::Cost`
    /// estimates it from the sequence's length and the model's widths
    /// (default 2 GiB: with the input, the output and the allocator's
    /// slack, a run stays under 4 GB). The CLI also bounds each window of
    /// inputs explained together by it.
    pub max_memory_bytes: u64,
    /// Work of one explanation in position-passes, one pass of the model
    /// (forward or backward) over one position, as `lrp_models::Cost`
    /// estimates it (default 2,000,000: LRP on 1,000,000 positions,
    /// occlusion on about 1,400, integrated gradients with 50 steps on
    /// about 19,800; with the SST model a position-pass takes 10 to 40 µs
    /// on one core, so about a minute at most).
    pub max_work: u64,
}

impl Default for Limits {
    fn default() -> Self {
        const MIB: u64 = 1 << 20;
        Self {
            max_config_bytes: MIB,
            max_weights_bytes: 1024 * MIB,
            max_vocab_bytes: 64 * MIB,
            max_vectors_bytes: 1024 * MIB,
            max_text_bytes: 64 * MIB,
            max_data_bytes: 256 * MIB,
            max_line_bytes: 100_000,
            max_tokens: 10_000_000,
            max_sequences: 100_000,
            max_total_tokens: 2_000_000,
            max_npz_entry_bytes: 1024 * MIB,
            max_npz_total_bytes: 2048 * MIB,
            max_npz_ratio: 100,
            max_graph_nodes: 100_000,
            max_graph_attributes: 200_000,
            max_graph_entries: 1_000_000,
            max_memory_bytes: 2048 * MIB,
            max_work: 2_000_000,
        }
    }
}

impl Limits {
    /// Refuses an explanation of `input` (a file, `TEXT`, an array: what
    /// the message names) whose estimated `cost` is over
    /// [`Limits::max_memory_bytes`] or [`Limits::max_work`]: an
    /// [`Error::Cost`](crate::Error::Cost) naming the limit, before
    /// anything runs.
    ///
    /// ```
    /// use lrp_models::Cost;
    /// let limits = lrp_io::Limits::default();
    /// let cheap = Cost { work: 1_000, bytes: 1 << 20 };
    /// assert!(limits.check_cost("TEXT", cheap).is_ok());
    /// let long = Cost { work: 25_005_000, bytes: 1 << 20 }; // occlusion on 5,000 words
    /// let refused = limits.check_cost("TEXT", long).unwrap_err().to_string();
    /// assert!(refused.contains("--max-work"), "{refused}");
    /// ```
    pub fn check_cost(&self, input: &str, cost: lrp_models::Cost) -> Result<(), crate::Error> {
        for (kind, needed, limit) in [
            (LimitKind::MemoryBytes, cost.bytes, self.max_memory_bytes),
            (LimitKind::Work, cost.work, self.max_work),
        ] {
            if needed > limit {
                return Err(crate::Error::Cost {
                    input: input.to_string(),
                    kind,
                    needed,
                    limit,
                });
            }
        }
        Ok(())
    }
}

/// Npz entries up to this size are exempt from the ratio check: a small
/// array of zeros compresses far better than 100 : 1 and is harmless.
pub(crate) const RATIO_EXEMPT_BYTES: u64 = 1 << 20;

/// What a limit applies to, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitKind {
    /// [`Limits::max_config_bytes`].
    ConfigBytes,
    /// [`Limits::max_weights_bytes`].
    WeightsBytes,
    /// [`Limits::max_vocab_bytes`].
    VocabBytes,
    /// [`Limits::max_vectors_bytes`].
    VectorsBytes,
    /// [`Limits::max_text_bytes`].
    TextBytes,
    /// [`Limits::max_data_bytes`].
    DataBytes,
    /// [`Limits::max_line_bytes`].
    LineBytes,
    /// [`Limits::max_tokens`].
    Tokens,
    /// [`Limits::max_sequences`].
    Sequences,
    /// [`Limits::max_total_tokens`].
    TotalTokens,
    /// [`Limits::max_npz_entry_bytes`].
    NpzEntryBytes,
    /// [`Limits::max_npz_total_bytes`].
    NpzTotalBytes,
    /// [`Limits::max_npz_ratio`].
    NpzRatio,
    /// [`Limits::max_graph_nodes`].
    GraphNodes,
    /// [`Limits::max_graph_attributes`].
    GraphAttributes,
    /// [`Limits::max_graph_entries`].
    GraphEntries,
    /// [`Limits::max_memory_bytes`].
    MemoryBytes,
    /// [`Limits::max_work`].
    Work,
}

impl LimitKind {
    /// Every limit, in the order of [`Limits`]' fields.
    pub const ALL: [LimitKind; 18] = [
        Self::ConfigBytes,
        Self::WeightsBytes,
        Self::VocabBytes,
        Self::VectorsBytes,
        Self::TextBytes,
        Self::DataBytes,
        Self::LineBytes,
        Self::Tokens,
        Self::Sequences,
        Self::TotalTokens,
        Self::NpzEntryBytes,
        Self::NpzTotalBytes,
        Self::NpzRatio,
        Self::GraphNodes,
        Self::GraphAttributes,
        Self::GraphEntries,
        Self::MemoryBytes,
        Self::Work,
    ];

    /// What is limited, in words.
    pub fn what(self) -> &'static str {
        match self {
            Self::ConfigBytes => "bytes of a config file",
            Self::WeightsBytes => "bytes of a weights file",
            Self::VocabBytes => "bytes of a vocabulary file",
            Self::VectorsBytes => "bytes of a vectors file",
            Self::TextBytes => "bytes of text input",
            Self::DataBytes => "bytes of a data file",
            Self::LineBytes => "bytes in one line",
            Self::Tokens => "positions in one sequence",
            Self::Sequences => "sequences in one input",
            Self::TotalTokens => "positions in one input",
            Self::NpzEntryBytes => "decompressed bytes of one npz entry",
            Self::NpzTotalBytes => "decompressed bytes of one npz archive",
            Self::NpzRatio => "decompressed bytes per compressed byte",
            Self::GraphNodes => "nodes in one graph",
            Self::GraphAttributes => "node attributes in one graph",
            Self::GraphEntries => "entries (initializers, names, dims, ...) in one graph",
            Self::MemoryBytes => "bytes of memory",
            Self::Work => "position-passes of work",
        }
    }

    /// The `lrp` flag that sets this limit.
    pub fn flag(self) -> &'static str {
        match self {
            Self::ConfigBytes => "--max-config-size",
            Self::WeightsBytes => "--max-weights-size",
            Self::VocabBytes => "--max-vocab-size",
            Self::VectorsBytes => "--max-vectors-size",
            Self::TextBytes => "--max-text-size",
            Self::DataBytes => "--max-data-size",
            Self::LineBytes => "--max-line-size",
            Self::Tokens => "--max-tokens",
            Self::Sequences => "--max-sequences",
            Self::TotalTokens => "--max-total-tokens",
            Self::NpzEntryBytes => "--max-npz-entry-size",
            Self::NpzTotalBytes => "--max-npz-size",
            Self::NpzRatio => "--max-npz-ratio",
            Self::GraphNodes => "--max-graph-nodes",
            Self::GraphAttributes => "--max-graph-attributes",
            Self::GraphEntries => "--max-graph-entries",
            Self::MemoryBytes => "--max-memory",
            Self::Work => "--max-work",
        }
    }
}

impl std::fmt::Display for LimitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.what())
    }
}
