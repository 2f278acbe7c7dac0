//! The flags that set the limits on untrusted input (`lrp_io::Limits`),
//! shared by every command that reads files.

use lrp_io::Limits;

/// Limits on what input files may make `lrp` read and allocate. The
/// defaults suit a 2-core, 24 GB machine; raise one when a real input
/// needs more. Sizes take a K, M or G suffix (powers of 1024).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Limits")]
pub struct LimitArgs {
    /// Largest config.json.
    #[arg(long, value_name = "SIZE", default_value_t = ByteSize(Limits::default().max_config_bytes))]
    pub max_config_size: ByteSize,
    /// Largest weights file (.safetensors, .npz).
    #[arg(long, value_name = "SIZE", default_value_t = ByteSize(Limits::default().max_weights_bytes))]
    pub max_weights_size: ByteSize,
    /// Largest vocab.txt.
    #[arg(long, value_name = "SIZE", default_value_t = ByteSize(Limits::default().max_vocab_bytes))]
    pub max_vocab_size: ByteSize,
    /// Largest --vectors file (.npy, .npz).
    #[arg(long, value_name = "SIZE", default_value_t = ByteSize(Limits::default().max_vectors_bytes))]
    pub max_vectors_size: ByteSize,
    /// Largest text input (--input FILE, standard input) [default: none: explain reads it a line at a time].
    #[arg(long, value_name = "SIZE")]
    pub max_text_size: Option<ByteSize>,
    /// Largest --data file (and the truth file beside it).
    #[arg(long, value_name = "SIZE", default_value_t = ByteSize(Limits::default().max_data_bytes))]
    pub max_data_size: ByteSize,
    /// Longest line of text input (and text argument).
    #[arg(long, value_name = "SIZE", default_value_t = ByteSize(Limits::default().max_line_bytes as u64))]
    pub max_line_size: ByteSize,
    /// Most positions (tokens, vectors) in one sequence (a sanity cap: --max-memory and --max-work decide).
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_tokens)]
    pub max_tokens: usize,
    /// Most sequences (lines, sentences, arrays) in one input [default: 100000; none for what explain streams: --input, --vectors].
    #[arg(long, value_name = "N")]
    pub max_sequences: Option<usize>,
    /// Most positions in all the sequences of one input together [default: 2000000; none for what explain streams].
    #[arg(long, value_name = "N")]
    pub max_total_tokens: Option<usize>,
    /// Largest decompressed npz entry.
    #[arg(long, value_name = "SIZE", default_value_t = ByteSize(Limits::default().max_npz_entry_bytes))]
    pub max_npz_entry_size: ByteSize,
    /// Largest decompressed npz archive (all entries) [default: 2G; none for the --vectors explain streams].
    #[arg(long, value_name = "SIZE")]
    pub max_npz_size: Option<ByteSize>,
    /// Largest compression ratio of an npz entry over 1M.
    #[arg(long, value_name = "R", default_value_t = Limits::default().max_npz_ratio)]
    pub max_npz_ratio: u64,
    /// Most nodes in an imported graph (lrp import).
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_graph_nodes)]
    pub max_graph_nodes: usize,
    /// Most node attributes in an imported graph (lrp import).
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_graph_attributes)]
    pub max_graph_attributes: usize,
    /// Most other entries (initializers, names, dims, ...) in an imported graph (lrp import).
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_graph_entries)]
    pub max_graph_entries: usize,
    /// Most memory one explanation (or one window of them) may need, estimated from its length and the model's widths.
    #[arg(long, value_name = "SIZE", default_value_t = ByteSize(Limits::default().max_memory_bytes))]
    pub max_memory: ByteSize,
    /// Most work one explanation may need, in position-passes: one pass of the model (forward or backward) over one position (LRP: 2 T; occlusion: (T + 1) T; IG: (2 steps + 1) T; seq2seq: summed over the output steps).
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_work)]
    pub max_work: u64,
}

impl LimitArgs {
    /// The limits these flags set; the library's defaults where a flag is
    /// not given. For inputs held whole.
    pub fn limits(&self) -> Limits {
        let defaults = Limits::default();
        let mut limits = self.streaming_limits();
        limits.max_text_bytes = self.max_text_size.map_or(defaults.max_text_bytes, |s| s.0);
        limits.max_sequences = self.max_sequences.unwrap_or(defaults.max_sequences);
        limits.max_total_tokens = self.max_total_tokens.unwrap_or(defaults.max_total_tokens);
        limits.max_npz_total_bytes = self.max_npz_size.map_or(defaults.max_npz_total_bytes, |s| s.0);
        limits
    }

    /// The limits for an input read a piece at a time (what `explain`
    /// reads with `--input` and `--vectors`): as [`LimitArgs::limits`],
    /// except that the limits on an input's size in all (text size,
    /// sequences, positions in all, npz archive size), which bound memory
    /// only when an input is held whole, hold only when their flags are
    /// given. The size of a vectors file (its zip directory is held) and
    /// every limit on one line or one sequence still hold.
    pub fn streaming_limits(&self) -> Limits {
        let mut limits = Limits::default();
        limits.max_config_bytes = self.max_config_size.0;
        limits.max_weights_bytes = self.max_weights_size.0;
        limits.max_vocab_bytes = self.max_vocab_size.0;
        limits.max_vectors_bytes = self.max_vectors_size.0;
        limits.max_text_bytes = self.max_text_size.map_or(u64::MAX, |s| s.0);
        limits.max_data_bytes = self.max_data_size.0;
        limits.max_line_bytes = usize::try_from(self.max_line_size.0).unwrap_or(usize::MAX);
        limits.max_tokens = self.max_tokens;
        limits.max_sequences = self.max_sequences.unwrap_or(usize::MAX);
        limits.max_total_tokens = self.max_total_tokens.unwrap_or(usize::MAX);
        limits.max_npz_entry_bytes = self.max_npz_entry_size.0;
        limits.max_npz_total_bytes = self.max_npz_size.map_or(u64::MAX, |s| s.0);
        limits.max_npz_ratio = self.max_npz_ratio;
        limits.max_graph_nodes = self.max_graph_nodes;
        limits.max_graph_attributes = self.max_graph_attributes;
        limits.max_graph_entries = self.max_graph_entries;
        limits.max_memory_bytes = self.max_memory.0;
        limits.max_work = self.max_work;
        limits
    }
}

/// A size in bytes, written as a number with an optional K, M or G suffix
/// (powers of 1024): `4096`, `64K`, `1G`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl std::str::FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (digits, shift) = match text.char_indices().last() {
            Some((k, 'K' | 'k')) => (&text[..k], 10),
            Some((k, 'M' | 'm')) => (&text[..k], 20),
            Some((k, 'G' | 'g')) => (&text[..k], 30),
            _ => (text, 0),
        };
        let number: u64 = digits
            .parse()
            .map_err(|_| "expected a number of bytes, optionally with K, M or G".to_string())?;
        number
            .checked_mul(1 << shift)
            .map(ByteSize)
            .ok_or_else(|| "too large".to_string())
    }
}

impl std::fmt::Display for ByteSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (suffix, shift) in [("G", 30), ("M", 20), ("K", 10)] {
            if self.0 >= 1 << shift && self.0 % (1 << shift) == 0 {
                return write!(f, "{}{suffix}", self.0 >> shift);
            }
        }
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Probe {
        #[command(flatten)]
        limits: LimitArgs,
    }

    #[test]
    fn defaults_are_the_library_defaults() {
        let probe = Probe::parse_from(["probe"]);
        assert_eq!(probe.limits.limits(), Limits::default());
        let probe = Probe::parse_from(["probe", "--max-tokens", "7", "--max-npz-size", "3M"]);
        assert_eq!(probe.limits.limits().max_tokens, 7);
        assert_eq!(probe.limits.limits().max_npz_total_bytes, 3 << 20);
    }

    #[test]
    fn streamed_inputs_have_no_limit_on_their_size_in_all_unless_given() {
        let defaults = Limits::default();
        let streamed = Probe::parse_from(["probe"]).limits.streaming_limits();
        let unlimited = (u64::MAX, usize::MAX, usize::MAX, u64::MAX);
        let in_all = |l: &Limits| {
            (
                l.max_text_bytes,
                l.max_sequences,
                l.max_total_tokens,
                l.max_npz_total_bytes,
            )
        };
        assert_eq!(in_all(&streamed), unlimited);
        // Every other limit is the library's.
        let mut rest = streamed;
        (
            rest.max_text_bytes,
            rest.max_sequences,
            rest.max_total_tokens,
            rest.max_npz_total_bytes,
        ) = in_all(&defaults);
        assert_eq!(rest, defaults);
        let given = ["probe", "--max-text-size", "1K", "--max-sequences", "5"];
        let given = ["--max-total-tokens", "6", "--max-npz-size", "7"]
            .iter()
            .fold(given.to_vec(), |mut v, a| {
                v.push(a);
                v
            });
        let streamed = Probe::parse_from(given).limits.streaming_limits();
        assert_eq!(in_all(&streamed), (1024, 5, 6, 7));
        // The help names the library's defaults.
        let help = Probe::command().render_help().to_string();
        for default in [
            format!("[default: {};", defaults.max_sequences),
            format!("[default: {};", defaults.max_total_tokens),
            format!("[default: {};", ByteSize(defaults.max_npz_total_bytes)),
        ] {
            assert!(help.contains(&default), "{default} in {help}");
        }
    }

    #[test]
    fn every_limit_has_its_flag() {
        let command = Probe::command();
        let flags: Vec<String> = command
            .get_arguments()
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .collect();
        for kind in lrp_io::LimitKind::ALL {
            assert!(flags.iter().any(|f| f == kind.flag()), "{kind:?}: {flags:?}");
        }
        assert_eq!(flags.len(), lrp_io::LimitKind::ALL.len());
    }

    #[test]
    fn sizes_read_and_print() {
        for (text, bytes) in [("4096", 4096), ("64K", 64 << 10), ("1g", 1 << 30), ("3M", 3 << 20)] {
            assert_eq!(text.parse::<ByteSize>(), Ok(ByteSize(bytes)));
        }
        assert!("1T".parse::<ByteSize>().is_err());
        assert!("99999999999999999999G".parse::<ByteSize>().is_err());
        assert_eq!(ByteSize(1 << 30).to_string(), "1G");
        assert_eq!(ByteSize(100_000).to_string(), "100000");
    }
}
