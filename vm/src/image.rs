//! Guest images: a Debian bookworm guest built offline from Debian's packages
//! by the recipe in `vm/recipe/` (root filesystem with mmdebstrap, Debian
//! kernel with BTF, a busybox initramfs, qcow2 disk, per-image ssh keys),
//! cached under `$QFC_LAB_CACHE/images/<key>/` where `key` is the BLAKE3 of
//! the recipe files, the architecture and the exact package versions. The
//! key goes in the bundle manifest. A rebuild with a warm cache takes
//! seconds: only hashing and a look-up.
//!
//! Package versions are pinned by the cache: the private apt lists
//! (`$QFC_LAB_CACHE/apt/<arch>/`) and the root filesystem tarball
//! (`$QFC_LAB_CACHE/images/rootfs/`) are reused until `refresh` is asked for.

use crate::arch::Arch;
use crate::ssh::SshDest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};
use tracing::{info, instrument};

/// The recipe: file name and contents, embedded so that the key covers
/// exactly what runs.
pub const RECIPE: [(&str, &str); 6] = [
    ("packages.txt", include_str!("../recipe/packages.txt")),
    ("rootfs.sh", include_str!("../recipe/rootfs.sh")),
    ("fetch-debs.sh", include_str!("../recipe/fetch-debs.sh")),
    ("image.sh", include_str!("../recipe/image.sh")),
    (
        "initramfs-init.sh",
        include_str!("../recipe/initramfs-init.sh"),
    ),
    ("guest-init.sh", include_str!("../recipe/guest-init.sh")),
];

/// Extra packages of [`Flavor::Bench`], added to `packages.txt`.
pub const BENCH_PACKAGES: &str = include_str!("../recipe/packages-bench.txt");

/// Which packages the root filesystem has beyond the recipe's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Flavor {
    /// `packages.txt`: what runs need (every run, CI).
    #[default]
    Standard,
    /// `packages.txt` and `packages-bench.txt`: the benchmarks' peers
    /// (bpftrace), for `cargo xtask guest-probe-cost`.
    Bench,
}

impl Flavor {
    /// The package list given to `rootfs.sh`.
    pub fn packages(self) -> String {
        let base = RECIPE
            .iter()
            .find(|(n, _)| *n == "packages.txt")
            .map(|(_, t)| *t)
            .unwrap_or_default();
        match self {
            Flavor::Standard => base.to_string(),
            Flavor::Bench => format!("{base}{BENCH_PACKAGES}"),
        }
    }

    fn file_name(self) -> &'static str {
        match self {
            Flavor::Standard => "packages.txt",
            Flavor::Bench => "packages+bench.txt",
        }
    }
}

/// Name under which the guest's host key is pinned in the image's `known_hosts`.
pub const HOST_KEY_ALIAS: &str = "qfc-lab-guest";

/// Version of the `image.json` layout.
const IMAGE_JSON_VERSION: u32 = 1;

/// The cache root: `$QFC_LAB_CACHE` or `/var/cache/qfc-lab`.
pub fn cache_root() -> PathBuf {
    std::env::var_os("QFC_LAB_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/qfc-lab"))
}

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub arch: Arch,
    /// Cache root (images go in `<cache>/images/`).
    pub cache_dir: PathBuf,
    /// Re-resolve package versions (apt lists) and rebuild the root filesystem.
    pub refresh: bool,
    /// Extra packages (a separate root filesystem and image key).
    pub flavor: Flavor,
}

impl BuildOptions {
    pub fn new(arch: Arch) -> BuildOptions {
        BuildOptions {
            arch,
            cache_dir: cache_root(),
            refresh: false,
            flavor: Flavor::Standard,
        }
    }
}

/// A recipe step, for the progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// mmdebstrap the root filesystem (minutes under emulation; cached).
    Rootfs,
    /// Resolve and download the kernel and busybox-static packages.
    Packages,
    /// Unpack the kernel and index its modules.
    Kernel,
    /// Build the initramfs.
    Initramfs,
    /// Generate the image's ssh host and client keys.
    Keys,
    /// Assemble the root filesystem into a qcow2 disk.
    Disk,
}

impl Step {
    pub fn describe(self) -> &'static str {
        match self {
            Step::Rootfs => "root filesystem (mmdebstrap)",
            Step::Packages => "kernel and busybox packages",
            Step::Kernel => "kernel and modules",
            Step::Initramfs => "initramfs",
            Step::Keys => "ssh keys",
            Step::Disk => "qcow2 disk",
        }
    }
}

/// Progress of [`build`], sent to the one UI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Progress {
    Started {
        step: Step,
    },
    Cached {
        step: Step,
    },
    Finished {
        step: Step,
        elapsed_ms: u64,
    },
    Ready {
        key: String,
        dir: PathBuf,
        from_cache: bool,
    },
}

/// A built image, as described by its `image.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub version: u32,
    /// BLAKE3 of recipe, architecture and package versions: goes in the bundle manifest.
    pub key: String,
    pub arch: Arch,
    pub dir: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub disk: PathBuf,
    /// Private key of the guest's root user.
    pub ssh_key: PathBuf,
    /// The guest's host key, pinned under [`HOST_KEY_ALIAS`].
    pub known_hosts: PathBuf,
    pub kernel_release: String,
    /// Every Debian package in the image (root filesystem, kernel, initramfs) and its version.
    pub packages: BTreeMap<String, String>,
    pub recipe_blake3: String,
}

/// What the bundle manifest records about the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ImageSummary {
    pub key: String,
    pub arch: Arch,
    pub kernel_release: String,
    pub recipe_blake3: String,
}

impl Image {
    /// Loads `dir/image.json`.
    pub fn load(dir: &Path) -> Result<Image, ImageError> {
        let path = dir.join("image.json");
        let text = std::fs::read_to_string(&path)
            .map_err(io_err(format!("reading {}", path.display())))?;
        let img: Image = serde_json::from_str(&text).map_err(|e| ImageError::Corrupt {
            path: path.clone(),
            why: e.to_string(),
        })?;
        for f in [
            &img.kernel,
            &img.initrd,
            &img.disk,
            &img.ssh_key,
            &img.known_hosts,
        ] {
            if !f.is_file() {
                return Err(ImageError::Corrupt {
                    path: path.clone(),
                    why: format!("{} is missing", f.display()),
                });
            }
        }
        Ok(img)
    }

    pub fn summary(&self) -> ImageSummary {
        ImageSummary {
            key: self.key.clone(),
            arch: self.arch,
            kernel_release: self.kernel_release.clone(),
            recipe_blake3: self.recipe_blake3.clone(),
        }
    }

    /// ssh destination of a guest booted from this image, whose port 22 is
    /// forwarded to `127.0.0.1:port`.
    pub fn ssh_dest(&self, port: u16) -> SshDest {
        SshDest {
            host: "127.0.0.1".into(),
            port,
            user: "root".into(),
            key: self.ssh_key.clone(),
            known_hosts: self.known_hosts.clone(),
            host_key_alias: Some(HOST_KEY_ALIAS.into()),
            connect_timeout_s: 20,
        }
    }
}

/// What went wrong building or loading an image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("the image build thread panicked")]
    Panicked,
    #[error("image step `{step}` failed: `{command}` exited with {status}; last output:\n{output_tail}\n(full log: {log})")]
    StepFailed {
        step: &'static str,
        command: String,
        status: String,
        output_tail: String,
        log: PathBuf,
    },
    #[error("{tool} is missing: run scripts/setup.sh (it installs {package})")]
    ToolMissing {
        tool: &'static str,
        package: &'static str,
    },
    #[error(
        "{arch} binaries do not run on this machine, so its guest image cannot be built: {why}"
    )]
    NoBinfmt { arch: Arch, why: String },
    #[error("cached image description {path} is unusable: {why}; delete that image folder to rebuild it")]
    Corrupt { path: PathBuf, why: String },
    #[error("unexpected output from {step}: {why}")]
    BadOutput { step: &'static str, why: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ImageError {
    let what = what.into();
    move |source| ImageError::Io { what, source }
}

/// BLAKE3 of the recipe files (names and contents, in order).
pub fn recipe_hash() -> String {
    let mut h = blake3::Hasher::new();
    for (name, text) in RECIPE {
        h.update(name.as_bytes());
        h.update(&[0]);
        h.update(&(text.len() as u64).to_le_bytes());
        h.update(text.as_bytes());
    }
    h.finalize().to_hex().to_string()
}

/// Key of the cached root filesystem tarball: the parts of the recipe that
/// shape it (for [`Flavor::Bench`], its extra packages too).
pub fn rootfs_key(arch: Arch, flavor: Flavor) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"qfc-lab rootfs\0");
    h.update(arch.debian().as_bytes());
    for (name, text) in RECIPE
        .iter()
        .filter(|(n, _)| *n == "rootfs.sh" || *n == "packages.txt")
    {
        h.update(name.as_bytes());
        h.update(&[0]);
        h.update(text.as_bytes());
        h.update(&[0]);
    }
    if flavor == Flavor::Bench {
        h.update(b"packages-bench.txt\0");
        h.update(BENCH_PACKAGES.as_bytes());
        h.update(&[0]);
    }
    h.finalize().to_hex().to_string()
}

/// The image key: BLAKE3 of recipe hash, architecture and every package version.
pub fn image_key(recipe: &str, arch: Arch, packages: &BTreeMap<String, String>) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"qfc-lab image v1\0");
    h.update(recipe.as_bytes());
    h.update(&[0]);
    h.update(arch.debian().as_bytes());
    h.update(&[0]);
    for (name, version) in packages {
        h.update(name.as_bytes());
        h.update(b"=");
        h.update(version.as_bytes());
        h.update(b"\n");
    }
    h.finalize().to_hex().to_string()
}

/// Parses a dpkg status file into package -> version (installed packages only).
pub fn parse_dpkg_status(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for para in text.split("\n\n") {
        let mut name = None;
        let mut version = None;
        let mut installed = false;
        for line in para.lines() {
            if let Some(v) = line.strip_prefix("Package: ") {
                name = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Version: ") {
                version = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Status: ") {
                installed = v.trim().ends_with(" installed");
            }
        }
        if let (Some(n), Some(v), true) = (name, version, installed) {
            out.insert(n.to_string(), v.to_string());
        }
    }
    out
}

/// What every step of [`build`] shares: the progress channel, the build
/// log, the recipe's files on disk, and where images and their parts live.
struct Ctx<'a> {
    progress: &'a Sender<Progress>,
    log: PathBuf,
    recipe_dir: PathBuf,
    /// `<cache>/images`.
    images: PathBuf,
    arch: Arch,
}

impl Ctx<'_> {
    fn send(&self, p: Progress) {
        let _ = self.progress.send(p);
    }

    /// Runs one named step between its `Started` and `Finished` events
    /// (the `Finished` carries the step's time); an error ends the build
    /// without a `Finished`.
    fn step<T>(
        &self,
        step: Step,
        f: impl FnOnce(&Self) -> Result<T, ImageError>,
    ) -> Result<T, ImageError> {
        self.send(Progress::Started { step });
        let t = Instant::now();
        let out = f(self)?;
        self.send(Progress::Finished {
            step,
            elapsed_ms: ms(t.elapsed()),
        });
        Ok(out)
    }

    /// Reports a step whose result came from the cache.
    fn cached(&self, step: Step) {
        self.send(Progress::Cached { step });
    }

    /// A recipe script's path, as an argument.
    fn script(&self, name: &str) -> std::ffi::OsString {
        self.recipe_dir.join(name).into_os_string()
    }

    /// Runs a recipe command, appending its output to the build log.
    fn run(
        &self,
        step: &'static str,
        argv: &[&std::ffi::OsStr],
        env: &[(&str, &str)],
    ) -> Result<String, ImageError> {
        let mut cmd = Command::new(argv[0]);
        cmd.args(&argv[1..])
            .env("RECIPE_DIR", &self.recipe_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let command = argv
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        info!(step, %command, "image recipe step");
        // Cancellable (Ctrl-C): the step's process group is killed.
        let out = crate::process::run_output(cmd, None)
            .map_err(io_err(format!("running {command}")))?
            .expect("no timeout was set");
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(io_err(format!("opening {}", self.log.display())))?;
        use std::io::Write;
        let _ = writeln!(log, "=== {step}: {command}");
        let _ = log.write_all(&out.stdout);
        let _ = log.write_all(&out.stderr);
        if !out.status.success() {
            let all = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let lines: Vec<&str> = all.lines().collect();
            let tail = lines[lines.len().saturating_sub(25)..].join("\n");
            return Err(ImageError::StepFailed {
                step,
                command,
                status: out.status.to_string(),
                output_tail: tail,
                log: self.log.clone(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

fn check_tools(arch: Arch) -> Result<(), ImageError> {
    let tools: [(&'static str, &'static str); 8] = [
        ("mmdebstrap", "mmdebstrap"),
        ("mkfs.ext4", "e2fsprogs"),
        ("qemu-img", "qemu-utils"),
        ("cpio", "cpio"),
        ("depmod", "kmod"),
        ("ssh-keygen", "openssh-client"),
        ("dpkg-deb", "dpkg"),
        ("arch-test", "arch-test"),
    ];
    for (tool, package) in tools {
        if which::which(tool).is_err() {
            return Err(ImageError::ToolMissing { tool, package });
        }
    }
    // Foreign-architecture maintainer scripts run through qemu-user: register
    // it now when qfc-lab runs as root (after a reboot nothing else has).
    crate::hostprep::ensure_binfmt(arch).map_err(|e| ImageError::NoBinfmt {
        arch,
        why: e.to_string(),
    })?;
    Ok(())
}

/// Returns the cached image for `opts` when there is one, without building.
pub fn cached(opts: &BuildOptions) -> Result<Option<Image>, ImageError> {
    let images = opts.cache_dir.join("images");
    let rootfs_versions = images.join("rootfs").join(format!(
        "{}-{}.versions.json",
        opts.arch.debian(),
        &rootfs_key(opts.arch, opts.flavor)[..16]
    ));
    let debs_file = images
        .join("debs")
        .join(format!("{}.resolved.json", opts.arch.debian()));
    let (Ok(rv), Ok(dv)) = (
        std::fs::read_to_string(&rootfs_versions),
        std::fs::read_to_string(&debs_file),
    ) else {
        return Ok(None);
    };
    let mut packages: BTreeMap<String, String> =
        serde_json::from_str(&rv).map_err(|e| ImageError::Corrupt {
            path: rootfs_versions.clone(),
            why: e.to_string(),
        })?;
    let debs: Vec<(String, String, String)> =
        serde_json::from_str(&dv).map_err(|e| ImageError::Corrupt {
            path: debs_file.clone(),
            why: e.to_string(),
        })?;
    for (name, version, _) in debs {
        packages.insert(name, version);
    }
    let key = image_key(&recipe_hash(), opts.arch, &packages);
    let dir = images.join(&key);
    if dir.join("image.json").is_file() {
        Image::load(&dir).map(Some)
    } else {
        Ok(None)
    }
}

/// [`build`] with each step printed to stderr as `[image] ...` lines (the
/// progress display of `qfc-lab image build` and `cargo xtask image-build`).
pub fn build_verbose(opts: &BuildOptions) -> Result<Image, ImageError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let started = Instant::now();
    let image = std::thread::scope(|sc| {
        let worker = sc.spawn(move || build(opts, &tx));
        for p in rx {
            match p {
                Progress::Started { step } => eprintln!("[image] {} ...", step.describe()),
                Progress::Cached { step } => eprintln!("[image] {}: cached", step.describe()),
                Progress::Finished { step, elapsed_ms } => {
                    eprintln!(
                        "[image] {}: done in {:.1} s",
                        step.describe(),
                        elapsed_ms as f64 / 1000.0
                    )
                }
                Progress::Ready {
                    key,
                    dir,
                    from_cache,
                } => eprintln!(
                    "[image] ready{}: key {key}\n[image] {}",
                    if from_cache { " (from cache)" } else { "" },
                    dir.display()
                ),
            }
        }
        worker.join().unwrap_or_else(|_| Err(ImageError::Panicked))
    })?;
    eprintln!("[image] {:.1} s in all", started.elapsed().as_secs_f64());
    Ok(image)
}

/// Builds the image for `opts.arch`, or returns it from the cache.
/// Blocking (minutes on a cold cache); progress goes to `progress`.
///
/// A recipe of named steps, each returning what the next needs:
/// `prepare` (recipe files, log) -> `rootfs` (tarball and its package
/// versions, cached) -> `packages_step` (kernel and busybox .debs) -> the
/// image key -> `from_cache`, or: `kernel` -> `initramfs` -> `keys` ->
/// `disk` -> `seal`. Each step is reported as started and finished (or
/// cached) through one helper, `Ctx::step`.
#[instrument(skip(opts, progress), fields(arch = %opts.arch))]
pub fn build(opts: &BuildOptions, progress: &Sender<Progress>) -> Result<Image, ImageError> {
    let ctx = prepare(opts, progress)?;
    let (tarball, mut packages) = rootfs(&ctx, opts.refresh, opts.flavor)?;
    let debs = ctx.step(Step::Packages, |c| packages_step(c, opts))?;
    for (name, version, _) in &debs {
        packages.insert(name.clone(), version.clone());
    }
    let debs_dir = ctx.images.join("debs");
    let kernel_deb = debs_dir.join(&debs[0].2);
    let busybox_deb = debs_dir.join(&debs[1].2);

    // The image itself, keyed by recipe and versions.
    let recipe = recipe_hash();
    let key = image_key(&recipe, ctx.arch, &packages);
    if let Some(img) = from_cache(&ctx, &key)? {
        return Ok(img);
    }
    check_tools(ctx.arch)?;
    let parts = Parts::fresh(&ctx.images, &key)?;
    let kernel_release = ctx.step(Step::Kernel, |c| kernel(c, &kernel_deb, &parts))?;
    ctx.step(Step::Initramfs, |c| initramfs(c, &busybox_deb, &parts))?;
    ctx.step(Step::Keys, |c| keys(c, &parts))?;
    ctx.step(Step::Disk, |c| disk(c, &tarball, &parts))?;
    seal(&ctx, parts, key, kernel_release, packages, recipe)
}

/// Writes the recipe files where the scripts run and opens the build log.
fn prepare<'a>(opts: &BuildOptions, progress: &'a Sender<Progress>) -> Result<Ctx<'a>, ImageError> {
    let arch = opts.arch;
    let images = opts.cache_dir.join("images");
    let recipe = recipe_hash();
    let recipe_dir = images.join("recipes").join(&recipe[..16]);
    std::fs::create_dir_all(&recipe_dir)
        .map_err(io_err(format!("creating {}", recipe_dir.display())))?;
    let flavor_list = (opts.flavor != Flavor::Standard)
        .then(|| (opts.flavor.file_name(), opts.flavor.packages()));
    for (name, text) in RECIPE
        .iter()
        .map(|(n, t)| (*n, *t))
        .chain(flavor_list.as_ref().map(|(n, t)| (*n, t.as_str())))
    {
        let p = recipe_dir.join(name);
        if std::fs::read_to_string(&p).ok().as_deref() != Some(text) {
            std::fs::write(&p, text).map_err(io_err(format!("writing {}", p.display())))?;
        }
    }
    let logs = images.join("logs");
    std::fs::create_dir_all(&logs).map_err(io_err(format!("creating {}", logs.display())))?;
    Ok(Ctx {
        progress,
        log: logs.join(format!(
            "build-{}-{}.log",
            arch.debian(),
            std::process::id()
        )),
        recipe_dir,
        images,
        arch,
    })
}

/// Step 1: the root filesystem tarball (cached by the rootfs recipe) and the
/// package versions read from its dpkg status.
fn rootfs(
    ctx: &Ctx<'_>,
    refresh: bool,
    flavor: Flavor,
) -> Result<(PathBuf, BTreeMap<String, String>), ImageError> {
    let arch = ctx.arch;
    let rootfs_dir = ctx.images.join("rootfs");
    std::fs::create_dir_all(&rootfs_dir)
        .map_err(io_err(format!("creating {}", rootfs_dir.display())))?;
    let rkey = &rootfs_key(arch, flavor)[..16];
    let tarball = rootfs_dir.join(format!("{}-{rkey}.tar", arch.debian()));
    let versions_file = rootfs_dir.join(format!("{}-{rkey}.versions.json", arch.debian()));
    if tarball.is_file() && !refresh {
        ctx.cached(Step::Rootfs);
    } else {
        check_tools(arch)?;
        ctx.step(Step::Rootfs, |c| {
            let _ = std::fs::remove_file(&versions_file);
            c.run(
                "rootfs",
                &[
                    "sh".as_ref(),
                    &c.script("rootfs.sh"),
                    arch.debian().as_ref(),
                    &c.script(flavor.file_name()),
                    tarball.as_os_str(),
                ],
                &[("TMPDIR", &c.images.display().to_string())],
            )
        })?;
    }
    if !versions_file.is_file() {
        let status = ctx.run(
            "rootfs",
            &[
                "tar".as_ref(),
                "-xOf".as_ref(),
                tarball.as_os_str(),
                "./var/lib/dpkg/status".as_ref(),
            ],
            &[],
        )?;
        let versions = parse_dpkg_status(&status);
        if versions.is_empty() {
            return Err(ImageError::BadOutput {
                step: "rootfs",
                why: format!(
                    "no installed packages in the dpkg status of {}",
                    tarball.display()
                ),
            });
        }
        write_json(&versions_file, &versions)?;
    }
    Ok((tarball, read_json(&versions_file)?))
}

/// Step 2: the kernel and busybox-static .debs (private apt lists, kept
/// until refresh): `(name, version, file)` of each, kernel first.
fn packages_step(
    ctx: &Ctx<'_>,
    opts: &BuildOptions,
) -> Result<Vec<(String, String, String)>, ImageError> {
    let arch = ctx.arch;
    let debs_dir = ctx.images.join("debs");
    let resolved_file = debs_dir.join(format!("{}.resolved.json", arch.debian()));
    let apt_dir = opts.cache_dir.join("apt").join(arch.debian());
    let refresh = if opts.refresh { "1" } else { "0" };
    let out = ctx.run(
        "packages",
        &[
            "sh".as_ref(),
            &ctx.script("fetch-debs.sh"),
            arch.debian().as_ref(),
            apt_dir.as_os_str(),
            debs_dir.as_os_str(),
            format!("linux-image-{}", arch.debian()).as_ref(),
            "busybox-static".as_ref(),
        ],
        &[("QFC_APT_REFRESH", refresh)],
    )?;
    let mut debs: Vec<(String, String, String)> = Vec::new();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [name, version, file] = parts[..] else {
            return Err(ImageError::BadOutput {
                step: "packages",
                why: format!("line `{line}`"),
            });
        };
        debs.push((name.into(), version.into(), file.into()));
    }
    if debs.len() != 2 {
        return Err(ImageError::BadOutput {
            step: "packages",
            why: format!("expected 2 packages, got {out}"),
        });
    }
    write_json(&resolved_file, &debs)?;
    Ok(debs)
}

/// Step 3: the image of this key from the cache, if it was built before
/// (every later step then reports as cached).
fn from_cache(ctx: &Ctx<'_>, key: &str) -> Result<Option<Image>, ImageError> {
    let dir = ctx.images.join(key);
    if !dir.join("image.json").is_file() {
        return Ok(None);
    }
    let img = Image::load(&dir)?;
    for step in [Step::Kernel, Step::Initramfs, Step::Keys, Step::Disk] {
        ctx.cached(step);
    }
    ctx.send(Progress::Ready {
        key: key.to_string(),
        dir,
        from_cache: true,
    });
    let _ = std::fs::remove_file(&ctx.log);
    Ok(Some(img))
}

/// Where an image is assembled: `<key>.partial` becomes the image directory
/// in [`seal`]; `<key>.work` is scratch.
struct Parts {
    partial: PathBuf,
    work: PathBuf,
}

impl Parts {
    /// Empty `partial` and `work` directories for `key`.
    fn fresh(images: &Path, key: &str) -> Result<Parts, ImageError> {
        let partial = images.join(format!("{key}.partial"));
        let work = images.join(format!("{key}.work"));
        let _ = std::fs::remove_dir_all(&partial);
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&partial)
            .map_err(io_err(format!("creating {}", partial.display())))?;
        std::fs::create_dir_all(&work).map_err(io_err(format!("creating {}", work.display())))?;
        Ok(Parts { partial, work })
    }
}

/// Step 4: unpacks the kernel and indexes its modules; returns the kernel
/// release.
fn kernel(ctx: &Ctx<'_>, kernel_deb: &Path, parts: &Parts) -> Result<String, ImageError> {
    let kver = ctx.run(
        "kernel",
        &[
            "sh".as_ref(),
            &ctx.script("image.sh"),
            "kernel".as_ref(),
            kernel_deb.as_os_str(),
            parts.work.as_os_str(),
        ],
        &[],
    )?;
    let kernel_release = kver.lines().last().unwrap_or_default().trim().to_string();
    if kernel_release.is_empty() {
        return Err(ImageError::BadOutput {
            step: "kernel",
            why: "no kernel release printed".into(),
        });
    }
    Ok(kernel_release)
}

/// Step 5: the busybox initramfs.
fn initramfs(ctx: &Ctx<'_>, busybox_deb: &Path, parts: &Parts) -> Result<(), ImageError> {
    ctx.run(
        "initramfs",
        &[
            "sh".as_ref(),
            &ctx.script("image.sh"),
            "initramfs".as_ref(),
            busybox_deb.as_os_str(),
            parts.work.as_os_str(),
            parts.partial.as_os_str(),
        ],
        &[],
    )?;
    Ok(())
}

/// Step 6: the image's ssh host and client keys, and a `known_hosts` that
/// pins the host key under [`HOST_KEY_ALIAS`].
fn keys(ctx: &Ctx<'_>, parts: &Parts) -> Result<(), ImageError> {
    let partial = &parts.partial;
    for (file, comment) in [
        ("ssh_host_ed25519_key", "qfc-lab guest host key"),
        ("id_ed25519", "qfc-lab lab user"),
    ] {
        let path = partial.join(file);
        ctx.run(
            "keys",
            &[
                "ssh-keygen".as_ref(),
                "-q".as_ref(),
                "-t".as_ref(),
                "ed25519".as_ref(),
                "-N".as_ref(),
                "".as_ref(),
                "-C".as_ref(),
                comment.as_ref(),
                "-f".as_ref(),
                path.as_os_str(),
            ],
            &[],
        )?;
    }
    let host_pub = std::fs::read_to_string(partial.join("ssh_host_ed25519_key.pub"))
        .map_err(io_err("reading the host public key"))?;
    let mut fields = host_pub.split_whitespace();
    let (Some(kt), Some(kb)) = (fields.next(), fields.next()) else {
        return Err(ImageError::BadOutput {
            step: "keys",
            why: "malformed host public key".into(),
        });
    };
    let known_hosts = partial.join("known_hosts");
    std::fs::write(&known_hosts, format!("{HOST_KEY_ALIAS} {kt} {kb}\n"))
        .map_err(io_err("writing known_hosts"))
}

/// Step 7: the root filesystem assembled into a qcow2 disk.
fn disk(ctx: &Ctx<'_>, tarball: &Path, parts: &Parts) -> Result<(), ImageError> {
    ctx.run(
        "disk",
        &[
            "sh".as_ref(),
            &ctx.script("image.sh"),
            "disk".as_ref(),
            tarball.as_os_str(),
            parts.work.as_os_str(),
            parts.partial.as_os_str(),
        ],
        &[],
    )?;
    Ok(())
}

/// Step 8: drops the host's private key (it is baked into the disk), writes
/// `image.json`, moves the parts into place under the key and reports ready.
fn seal(
    ctx: &Ctx<'_>,
    parts: Parts,
    key: String,
    kernel_release: String,
    packages: BTreeMap<String, String>,
    recipe: String,
) -> Result<Image, ImageError> {
    let Parts { partial, work } = parts;
    let dir = ctx.images.join(&key);
    let _ = std::fs::remove_file(partial.join("ssh_host_ed25519_key"));
    let _ = std::fs::remove_dir_all(&work);
    let image = Image {
        version: IMAGE_JSON_VERSION,
        key: key.clone(),
        arch: ctx.arch,
        dir: dir.clone(),
        kernel: dir.join("vmlinuz"),
        initrd: dir.join("initrd.img"),
        disk: dir.join("disk.qcow2"),
        ssh_key: dir.join("id_ed25519"),
        known_hosts: dir.join("known_hosts"),
        kernel_release,
        packages,
        recipe_blake3: recipe,
    };
    write_json(&partial.join("image.json"), &image)?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&partial, &dir).map_err(io_err(format!(
        "moving {} to {}",
        partial.display(),
        dir.display()
    )))?;
    let _ = std::fs::copy(&ctx.log, dir.join("build.log"));
    let _ = std::fs::remove_file(&ctx.log);
    ctx.send(Progress::Ready {
        key,
        dir: dir.clone(),
        from_cache: false,
    });
    Image::load(&dir)
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), ImageError> {
    let text = serde_json::to_string_pretty(value).expect("serializable");
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(io_err(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(io_err(format!("writing {}", path.display())))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, ImageError> {
    let text =
        std::fs::read_to_string(path).map_err(io_err(format!("reading {}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| ImageError::Corrupt {
        path: path.to_path_buf(),
        why: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 14: the one step helper emits started, then finished with the
    /// step's time; a failing step ends without finished; cached steps and
    /// a cached image report as such.
    #[test]
    fn step_helper_reports_started_finished_and_cached() {
        let (tx, rx) = std::sync::mpsc::channel();
        let images = tempfile::tempdir().unwrap();
        let ctx = Ctx {
            progress: &tx,
            log: images.path().join("build.log"),
            recipe_dir: images.path().join("recipe"),
            images: images.path().to_path_buf(),
            arch: Arch::X86_64,
        };
        assert_eq!(ctx.step(Step::Kernel, |_| Ok(7)).unwrap(), 7);
        let e = ctx.step(Step::Disk, |_| -> Result<(), ImageError> {
            Err(ImageError::BadOutput {
                step: "disk",
                why: "test".into(),
            })
        });
        assert!(e.is_err());
        assert!(from_cache(&ctx, "nokey").unwrap().is_none());
        ctx.cached(Step::Rootfs);
        drop(tx);
        let got: Vec<Progress> = rx.iter().collect();
        assert!(
            matches!(
                got[..],
                [
                    Progress::Started { step: Step::Kernel },
                    Progress::Finished {
                        step: Step::Kernel,
                        ..
                    },
                    Progress::Started { step: Step::Disk },
                    Progress::Cached { step: Step::Rootfs },
                ]
            ),
            "{got:?}"
        );
    }

    #[test]
    fn dpkg_status_keeps_installed_packages_only() {
        let status = "Package: a\nStatus: install ok installed\nVersion: 1.0\n\n\
                      Package: b\nStatus: deinstall ok config-files\nVersion: 2\n\n\
                      Package: c\nVersion: 1:3-4\nStatus: install ok installed\n";
        let m = parse_dpkg_status(status);
        assert_eq!(m.len(), 2);
        assert_eq!(m["a"], "1.0");
        assert_eq!(m["c"], "1:3-4");
    }

    #[test]
    fn key_changes_with_any_version_and_arch() {
        let mut p = BTreeMap::new();
        p.insert("bpftool".to_string(), "7.1.0+6.1.192-2".to_string());
        let r = recipe_hash();
        let k1 = image_key(&r, Arch::Aarch64, &p);
        assert_eq!(k1, image_key(&r, Arch::Aarch64, &p), "deterministic");
        assert_ne!(k1, image_key(&r, Arch::X86_64, &p));
        p.insert("bpftool".to_string(), "7.1.0+6.1.193-1".to_string());
        assert_ne!(k1, image_key(&r, Arch::Aarch64, &p));
        assert_ne!(k1, image_key("other recipe", Arch::Aarch64, &p));
        assert_eq!(k1.len(), 64);
    }

    #[test]
    fn bench_flavor_adds_bpftrace_in_its_own_rootfs() {
        let std_list = Flavor::Standard.packages();
        let bench = Flavor::Bench.packages();
        assert!(bench.starts_with(&std_list));
        let names = |t: &str| -> Vec<String> {
            t.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from)
                .collect()
        };
        assert!(!names(&std_list).contains(&"bpftrace".to_string()));
        assert!(names(&bench).contains(&"bpftrace".to_string()));
        for a in [Arch::Aarch64, Arch::X86_64] {
            assert_ne!(
                rootfs_key(a, Flavor::Standard),
                rootfs_key(a, Flavor::Bench)
            );
        }
    }

    #[test]
    fn recipe_names_what_the_probes_need() {
        let pk = RECIPE[0].1;
        for p in [
            "bpftool",
            "linux-perf",
            "strace",
            "librocksdb7.8",
            "openssh-server",
            "iproute2",
            "busybox",
            "ca-certificates",
        ] {
            assert!(pk.lines().any(|l| l.trim() == p), "packages.txt lacks {p}");
        }
    }
}
