use std::io::Write;
use std::path::{Component, Path, PathBuf};

use lrp_core::Float;
use lrp_models::config::Layout;
use lrp_models::{Model, ModelConfig, Tensor, Tensors};

use crate::npy::read_npz_tensors;
use crate::safetensors_file::{read_safetensors, write_safetensors};
use crate::{read_file_capped, AtomicFile, Error, LimitKind, Limits, Vocab};

/// A loaded model directory: the model and, for text models, its vocabulary.
#[derive(Debug, Clone)]
pub struct ModelDir<T: Float> {
    /// The model.
    pub model: Model<T>,
    /// The vocabulary, when the config names one.
    pub vocab: Option<Vocab>,
    /// A Hugging Face directory's `tokenizer.json`, when it has one.
    pub tokenizer: Option<crate::HfTokenizer>,
}

impl<T: Float> ModelDir<T> {
    /// The vocabulary, or an error saying the model cannot read text.
    pub fn vocab(&self) -> Result<&Vocab, Error> {
        self.vocab.as_ref().ok_or(Error::NoVocab)
    }
}

/// The files of the model directory `dir`, each with what it is (`the
/// model's config.json`, `the model's weights` ...): its `config.json` and
/// every file the config names (`weights`, `vocab`, and a seq2seq model's
/// `source_vocab` and `target_vocab`), for
/// [`refuse_output_over_input`](crate::refuse_output_over_input). A config
/// that cannot be read gives `config.json` alone: loading it says why.
pub fn model_files(dir: &Path, limits: &Limits) -> Vec<(String, PathBuf)> {
    let config_path = dir.join("config.json");
    let named: Vec<(String, PathBuf)> = read_file_capped(&config_path, limits.max_config_bytes, LimitKind::ConfigBytes)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .map(|config| {
            if config.get("model_type").is_some() {
                return crate::hugging_face::files(dir);
            }
            ["weights", "vocab", "source_vocab", "target_vocab"]
                .into_iter()
                .filter_map(|key| {
                    let name = config.get(key)?.as_str()?;
                    Some((format!("the model's {key}"), dir.join(name)))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut files = vec![("the model's config.json".to_string(), config_path)];
    files.extend(named);
    files
}

/// Loads a model directory (`docs/model-format.md`), computing in `T`,
/// within the default [`Limits`]. A Hugging Face `save_pretrained`
/// directory (a `config.json` with a `model_type`) is read as it is (see
/// [`hugging_face_config`](crate::hugging_face_config)).
///
/// Checks, before any computation: the config's keys and values, that the
/// weights and vocab paths stay inside the directory (after resolving
/// symbolic links), every tensor's presence, shape, element type and
/// finiteness, and that the vocabulary has `vocab_size` lines.
pub fn load_model<T: Float>(dir: impl AsRef<Path>) -> Result<ModelDir<T>, Error> {
    load_model_with(dir, &Limits::default())
}

/// [`load_model`] within `limits` (the sizes of config, weights and
/// vocabulary files; what a weights npz may decompress to).
pub fn load_model_with<T: Float>(dir: impl AsRef<Path>, limits: &Limits) -> Result<ModelDir<T>, Error> {
    let dir = dir.as_ref();
    let config_path = dir.join("config.json");
    let config_bytes = read_file_capped(&config_path, limits.max_config_bytes, LimitKind::ConfigBytes)?;
    // A Hugging Face `save_pretrained` directory is read as it is.
    if crate::hugging_face::is_hugging_face(&config_bytes) {
        return crate::hugging_face::load(dir, &config_path, &config_bytes, limits);
    }
    let config = parse_config(&config_path, &config_bytes)?;
    let weights_path = inside(dir, "weights", &config.weights)?;
    let weights = read_file_capped(&weights_path, limits.max_weights_bytes, LimitKind::WeightsBytes)?;
    let vocab = match &config.vocab {
        Some(name) => {
            let path = inside(dir, "vocab", name)?;
            let bytes = read_file_capped(&path, limits.max_vocab_bytes, LimitKind::VocabBytes)?;
            Some((path, bytes))
        }
        None => None,
    };
    model_from_parts_with(
        dir,
        config,
        &weights_path,
        &weights,
        vocab.as_ref().map(|(p, b)| (p.as_path(), b.as_slice())),
        limits,
    )
}

/// Builds a model from a parsed config and the bytes of its files (the
/// paths only name them in messages), e.g. for a model embedded in a
/// binary; within the default [`Limits`].
pub fn model_from_parts<T: Float>(
    dir: &Path,
    config: ModelConfig,
    weights_path: &Path,
    weights: &[u8],
    vocab: Option<(&Path, &[u8])>,
) -> Result<ModelDir<T>, Error> {
    model_from_parts_with(dir, config, weights_path, weights, vocab, &Limits::default())
}

/// [`model_from_parts`] within `limits` (what a weights npz may
/// decompress to).
pub fn model_from_parts_with<T: Float>(
    dir: &Path,
    config: ModelConfig,
    weights_path: &Path,
    weights: &[u8],
    vocab: Option<(&Path, &[u8])>,
    limits: &Limits,
) -> Result<ModelDir<T>, Error> {
    config.validate().map_err(|source| Error::Model {
        dir: dir.to_path_buf(),
        source,
    })?;
    let tensors = read_weights(dir, &config, weights_path, weights, limits)?;
    model_from_tensors(dir, config, tensors, vocab)
}

/// Builds a model from a config and its tensors already in memory (e.g.
/// handed over from Python), and the bytes of its vocabulary; `dir` and the
/// vocabulary's path only name them in messages. The same checks as
/// [`load_model`] after reading the files: the config's values, every
/// tensor, and the vocabulary's length.
pub fn model_from_tensors<T: Float>(
    dir: &Path,
    config: ModelConfig,
    tensors: Tensors,
    vocab: Option<(&Path, &[u8])>,
) -> Result<ModelDir<T>, Error> {
    config.validate().map_err(|source| Error::Model {
        dir: dir.to_path_buf(),
        source,
    })?;
    let vocab = match vocab {
        Some((path, bytes)) => Some(parse_vocab(&config, path, bytes)?),
        None => None,
    };
    let model = Model::from_config(config, tensors).map_err(|source| Error::Model {
        dir: dir.to_path_buf(),
        source,
    })?;
    Ok(ModelDir {
        model,
        vocab,
        tokenizer: None,
    })
}

/// The tensors of a weights file as its layout names them, unchanged (the
/// reader the config's layout and file name call for; `dir` and
/// `weights_path` name them in messages).
pub fn read_weights(
    dir: &Path,
    config: &ModelConfig,
    weights_path: &Path,
    weights: &[u8],
    limits: &Limits,
) -> Result<Tensors, Error> {
    Ok(match config.layout {
        Layout::Pytorch => read_safetensors(weights_path, weights)?,
        Layout::Reference => read_npz_tensors(weights_path, weights, limits)?,
        // The other frameworks' exports come both ways (numpy's savez from
        // Keras/TF, safetensors from a converter): the file name's ending
        // says which, as `ModelConfig::validate` has checked.
        Layout::Keras | Layout::Onnx | Layout::Tf1 if config.weights.ends_with(".npz") => {
            read_npz_tensors(weights_path, weights, limits)?
        }
        Layout::Keras | Layout::Onnx | Layout::Tf1 => read_safetensors(weights_path, weights)?,
        // `Layout` is non-exhaustive: a layout added later needs its reader here.
        other => {
            return Err(Error::Model {
                dir: dir.to_path_buf(),
                source: lrp_models::Error::Config {
                    key: "layout".into(),
                    message: format!("{other:?} has no weights reader"),
                },
            })
        }
    })
}

/// A model directory read but not built: its config, its tensors as the
/// file names them, and its vocabulary. `lrp check` builds variants of the model from it.
#[derive(Debug, Clone)]
pub struct ModelParts {
    /// The config, validated.
    pub config: ModelConfig,
    /// The tensors as the weights file names and shapes them.
    pub tensors: Tensors,
    /// The vocabulary, when the config names one.
    pub vocab: Option<Vocab>,
}

/// Reads a model directory within `limits` without building the model:
/// the same files and checks as [`load_model_with`] up to the tensors,
/// whose shapes are checked only when a model is built from them.
pub fn read_model_parts(dir: impl AsRef<Path>, limits: &Limits) -> Result<ModelParts, Error> {
    let dir = dir.as_ref();
    let config_path = dir.join("config.json");
    let config_bytes = read_file_capped(&config_path, limits.max_config_bytes, LimitKind::ConfigBytes)?;
    let config = parse_config(&config_path, &config_bytes)?;
    config.validate().map_err(|source| Error::Model {
        dir: dir.to_path_buf(),
        source,
    })?;
    let weights_path = inside(dir, "weights", &config.weights)?;
    let weights = read_file_capped(&weights_path, limits.max_weights_bytes, LimitKind::WeightsBytes)?;
    let tensors = read_weights(dir, &config, &weights_path, &weights, limits)?;
    let vocab = match &config.vocab {
        Some(name) => {
            let path = inside(dir, "vocab", name)?;
            let bytes = read_file_capped(&path, limits.max_vocab_bytes, LimitKind::VocabBytes)?;
            Some(parse_vocab(&config, &path, &bytes)?)
        }
        None => None,
    };
    Ok(ModelParts { config, tensors, vocab })
}

/// A vocabulary file's bytes, checked against the config (`vocab_size`
/// lines, the unknown token among them).
fn parse_vocab(config: &ModelConfig, path: &Path, bytes: &[u8]) -> Result<Vocab, Error> {
    let text = std::str::from_utf8(bytes).map_err(|e| Error::Format {
        path: path.to_path_buf(),
        message: format!("not UTF-8 text: {e}"),
    })?;
    let vocab = Vocab::parse(text, config.unk_token.as_deref(), config.lowercase)?;
    let expected = config.vocab_size.unwrap_or(0);
    if vocab.len() != expected {
        return Err(Error::VocabSize {
            path: path.to_path_buf(),
            expected,
            found: vocab.len(),
        });
    }
    Ok(vocab)
}

/// Parses the bytes of a `config.json` (`path` names it in messages); the
/// values are checked by `ModelConfig::validate`.
pub fn parse_config(path: &Path, bytes: &[u8]) -> Result<ModelConfig, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// The real path of the file a config names (`key = value`): `value` must
/// be a relative path without `..`, and the file it resolves to, after
/// every symbolic link, must lie inside the directory's own real path (a
/// link inside the directory may not lead out of it).
pub(crate) fn inside(dir: &Path, key: &'static str, value: &str) -> Result<PathBuf, Error> {
    let relative = Path::new(value);
    let plain = !value.is_empty() && relative.components().all(|c| matches!(c, Component::Normal(_)));
    if !plain {
        return Err(Error::UnsafePath {
            key,
            value: value.to_string(),
        });
    }
    let real = |path: &Path| {
        std::fs::canonicalize(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let real_dir = real(dir)?;
    let resolved = real(&dir.join(relative))?;
    if resolved.starts_with(&real_dir) {
        Ok(resolved)
    } else {
        Err(Error::OutsideModelDir {
            key,
            value: value.to_string(),
            resolved,
        })
    }
}

/// A model directory written but not yet in place: each file is a
/// temporary file in the directory ([`AtomicFile`]) until
/// [`StagedModelDir::commit`] renames them all into place. Dropped without
/// a commit (an error, a failed check of the model), the temporary files
/// are removed and the directory is as it was.
/// A directory that staging created is removed again with them.
#[derive(Debug)]
pub struct StagedModelDir {
    /// The files, in the order they are put in place (`config.json` last,
    /// so a directory with the new config always has the new weights).
    files: Vec<(PathBuf, AtomicFile)>,
    /// The directory, when staging created it.
    created: Option<PathBuf>,
}

impl StagedModelDir {
    /// Puts every file in place, `config.json` last; returns their paths.
    pub fn commit(mut self) -> Result<Vec<PathBuf>, Error> {
        self.created = None;
        let files = std::mem::take(&mut self.files);
        let mut written = Vec::with_capacity(files.len());
        for (path, file) in files {
            file.commit()?;
            written.push(path);
        }
        Ok(written)
    }
}

impl Drop for StagedModelDir {
    fn drop(&mut self) {
        // Not committed: the temporary files go first, then the directory
        // made for them (only if nothing else was put there meanwhile).
        self.files.clear();
        if let Some(dir) = &self.created {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Writes a model directory, staged ([`StagedModelDir`]): `config.json`
/// (the config with its defaults written out), `model.safetensors` (every
/// tensor in float64 when `double`, else float32) and, when given, the
/// vocabulary's bytes as `vocab.txt`.
///
/// The directory is created if needed. `dir` itself must be a directory or
/// nothing: a symbolic link (even to a directory) is an
/// [`Error::NotDirectoryOutput`]. Every target in it must be a regular file
/// or nothing; all are checked before anything is written, so a refused
/// target leaves every file as it was. The weights stream to their file one
/// tensor after another, without a copy of them in memory.
pub fn stage_model_dir(
    dir: &Path,
    config: &ModelConfig,
    tensors: &[(String, Tensor)],
    double: bool,
    vocab: Option<&[u8]>,
) -> Result<StagedModelDir, Error> {
    let fail = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Write { path, source }
    };
    let created = match std::fs::symlink_metadata(dir) {
        Ok(metadata) if metadata.is_dir() => None,
        Ok(metadata) => {
            return Err(Error::NotDirectoryOutput {
                path: dir.to_path_buf(),
                found: crate::read::file_type_name(metadata.file_type()),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(fail(dir))?;
            Some(dir.to_path_buf())
        }
        Err(e) => return Err(fail(dir)(e)),
    };
    let weights_path = dir.join(&config.weights);
    let config_path = dir.join("config.json");
    let vocab_path = vocab.map(|_| dir.join(config.vocab.as_deref().unwrap_or("vocab.txt")));
    // Every target checked (and its temporary file made) before any is written.
    let mut vocab_file = vocab_path.as_deref().map(AtomicFile::create).transpose()?;
    let mut weights_file = AtomicFile::create(&weights_path)?;
    let mut config_file = AtomicFile::create(&config_path)?;
    if let (Some(file), Some(bytes), Some(path)) = (vocab_file.as_mut(), vocab, vocab_path.as_deref()) {
        file.write_all(bytes).map_err(fail(path))?;
    }
    write_safetensors(&mut weights_file, tensors, double).map_err(fail(&weights_path))?;
    let mut json = serde_json::to_vec_pretty(config)
        .map_err(std::io::Error::from)
        .map_err(fail(&config_path))?;
    json.push(b'\n');
    config_file.write_all(&json).map_err(fail(&config_path))?;
    let mut files = Vec::with_capacity(3);
    if let (Some(path), Some(file)) = (vocab_path, vocab_file) {
        files.push((path, file));
    }
    files.push((weights_path, weights_file));
    files.push((config_path, config_file));
    Ok(StagedModelDir { files, created })
}
