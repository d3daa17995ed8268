//! The import-cycle checker (`cargo xtask cycles`): files are the nodes, and an
//! edge goes from a file to every other file that defines a name it refers to.
//!
//! References are `use` trees and every path in code, including inline ones
//! (`crate::qemu::which`, `super::x::Y`, `vm::Arch`) and paths inside macro
//! arguments that parse as expressions (`format!`, `assert!`, ...). A path is
//! resolved through the module tree of its crate: modules are walked, not counted,
//! re-exports (`pub use a::X`) are followed to the file that defines `X`, and a
//! path that ends at a module counts as a reference to that module's file. A
//! parent's `mod child;` declaration is not an edge. A name that cannot be found
//! in a workspace module (made by a macro) counts as defined by that module's
//! file. Test modules are code too: their references count.
//!
//! Crates are the packages under the root (every `Cargo.toml` with a `[package]`,
//! outside `target/` and `tests/data/` fixtures); their roots are `src/lib.rs`,
//! `src/main.rs`, `src/bin/*`, `tests/*`, `benches/*`, `examples/*`, `build.rs`
//! and the `path` of `[lib]`/`[[bin]]`/`[[test]]`/... targets.
//!
//! A cycle is a strongly connected component of more than one file; each is
//! printed with one reference (file:line and path) per edge of a cycle through it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::Context;
use syn::spanned::Spanned;
use syn::visit::Visit;

/// `cargo xtask cycles [--root DIR]`.
#[derive(clap::Args)]
pub struct CyclesArgs {
    /// The workspace to check (default: this repository).
    #[arg(long)]
    root: Option<PathBuf>,
}

/// Prints every cycle; fails when there is one.
pub fn run(args: CyclesArgs) -> anyhow::Result<()> {
    let root = match args.root {
        Some(r) => r,
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("xtask has no parent directory")?
            .to_path_buf(),
    };
    let graph = Graph::of_workspace(&root)?;
    let cycles = graph.cycles();
    println!(
        "import cycles: {} files, {} edges, {} cycle(s)",
        graph.files.len(),
        graph.edges.values().map(BTreeMap::len).sum::<usize>(),
        cycles.len()
    );
    for c in &cycles {
        println!("{}", c.describe(&root));
    }
    if !cycles.is_empty() {
        eprintln!(
            "error: {} import cycle(s) between files (listed above); break each by moving the shared items into a leaf module",
            cycles.len()
        );
        std::process::exit(1);
    }
    Ok(())
}

/// One reference that makes an edge: where it is and what it names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reference {
    pub line: usize,
    pub path: String,
}

/// The file graph of a set of crates.
#[derive(Debug, Default)]
pub struct Graph {
    pub files: BTreeSet<PathBuf>,
    /// from -> to -> the first reference (smallest line) that makes the edge.
    pub edges: BTreeMap<PathBuf, BTreeMap<PathBuf, Reference>>,
}

/// One strongly connected component, with one cycle through all of it.
#[derive(Debug)]
pub struct Cycle {
    pub files: Vec<PathBuf>,
    /// `files[i] -> files[i+1]` (and the last back to the first), with the
    /// reference that makes each edge. May repeat files when the component is
    /// not a simple ring.
    pub ring: Vec<(PathBuf, PathBuf, Reference)>,
}

impl Cycle {
    pub fn describe(&self, root: &Path) -> String {
        let rel = |p: &Path| p.strip_prefix(root).unwrap_or(p).display().to_string();
        let mut s = format!(
            "cycle among {}:",
            self.files
                .iter()
                .map(|f| rel(f))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for (a, b, r) in &self.ring {
            s += &format!("\n  {}:{} -> {} ({})", rel(a), r.line, rel(b), r.path);
        }
        s
    }
}

/// A module: the file it lives in, its names, and its `use` imports.
#[derive(Debug, Default)]
struct Module {
    file: PathBuf,
    parent: Option<usize>,
    children: HashMap<String, usize>,
    /// Items defined here (fn, struct, enum, trait, type, const, static, union, macro).
    items: BTreeSet<String>,
    /// name -> (path, is_glob=false); globs separately.
    imports: HashMap<String, Vec<String>>,
    globs: Vec<Vec<String>>,
    krate: usize,
}

/// A crate root: its name as written in paths (`lab`, `probes_common`) when it is a library.
struct Root {
    lib_name: Option<String>,
    file: PathBuf,
}

#[derive(Default)]
struct Tree {
    modules: Vec<Module>,
    /// crate index -> root module
    roots: Vec<usize>,
    /// library name -> root module of that library
    libs: HashMap<String, usize>,
    /// file -> parsed syntax (each file parsed once)
    parsed: HashMap<PathBuf, syn::File>,
}

enum Target {
    /// A module (a path that ends at a module).
    Module(usize),
    /// A name defined in this file.
    File(PathBuf),
    /// Outside the workspace (std, a registry crate, a local variable's type...).
    External,
}

impl Graph {
    /// The graph of every package under `root`.
    pub fn of_workspace(root: &Path) -> anyhow::Result<Graph> {
        let mut roots = Vec::new();
        for manifest in manifests(root)? {
            roots.extend(crate_roots(&manifest)?);
        }
        Graph::of_roots(roots.into_iter().map(|r| (r.lib_name, r.file)).collect())
    }

    /// The graph of the given crate roots (`Some(name)` for a library).
    pub fn of_roots(roots: Vec<(Option<String>, PathBuf)>) -> anyhow::Result<Graph> {
        let mut tree = Tree::default();
        for (k, (lib, file)) in roots.into_iter().enumerate() {
            let m = tree.load_module(&file, &file, None, k)?;
            tree.roots.push(m);
            if let Some(name) = lib {
                tree.libs.insert(name, m);
            }
        }
        let mut g = Graph::default();
        for m in &tree.modules {
            g.files.insert(m.file.clone());
        }
        // References: walk every file once per module tree that includes it
        // (a `tests/common/mod.rs` can belong to several test crates).
        let mut seen = BTreeSet::new();
        for (i, m) in tree.modules.iter().enumerate() {
            if m.parent.is_some() && tree.modules[m.parent.unwrap()].file == m.file {
                continue; // an inline module: walked with its file
            }
            if !seen.insert((m.file.clone(), m.krate)) {
                continue;
            }
            let file = tree.parsed[&m.file].clone();
            let mut v = Refs {
                tree: &tree,
                module: i,
                file: m.file.clone(),
                out: Vec::new(),
            };
            v.visit_file(&file);
            for (to, r) in v.out {
                if to == m.file {
                    continue;
                }
                let e = g.edges.entry(m.file.clone()).or_default();
                match e.get(&to) {
                    Some(old) if old <= &r => {}
                    _ => {
                        e.insert(to, r);
                    }
                }
            }
        }
        Ok(g)
    }

    /// Every strongly connected component of more than one file (Tarjan).
    pub fn cycles(&self) -> Vec<Cycle> {
        let nodes: Vec<&PathBuf> = self.files.iter().collect();
        let index: HashMap<&PathBuf, usize> =
            nodes.iter().enumerate().map(|(i, p)| (*p, i)).collect();
        let adj: Vec<Vec<usize>> = nodes
            .iter()
            .map(|n| {
                self.edges
                    .get(*n)
                    .map(|e| e.keys().filter_map(|t| index.get(t).copied()).collect())
                    .unwrap_or_default()
            })
            .collect();
        let sccs = tarjan(&adj);
        let mut out = Vec::new();
        for scc in sccs.into_iter().filter(|c| c.len() > 1) {
            let set: BTreeSet<usize> = scc.iter().copied().collect();
            let ring = ring_through(&adj, &set)
                .windows(2)
                .map(|w| {
                    let (a, b) = (nodes[w[0]], nodes[w[1]]);
                    (a.clone(), b.clone(), self.edges[a][b].clone())
                })
                .collect();
            let mut files: Vec<PathBuf> = set.iter().map(|&i| nodes[i].clone()).collect();
            files.sort();
            out.push(Cycle { files, ring });
        }
        out.sort_by(|a, b| a.files.cmp(&b.files));
        out
    }
}

/// A closed walk that starts at the smallest node of `set` and visits every
/// node of it (shortest paths inside the component, chained).
fn ring_through(adj: &[Vec<usize>], set: &BTreeSet<usize>) -> Vec<usize> {
    let start = *set.iter().next().expect("non-empty component");
    let mut walk = vec![start];
    let mut todo: Vec<usize> = set.iter().copied().skip(1).collect();
    let mut at = start;
    while !todo.is_empty() || walk.len() == 1 || at != start {
        let goal: BTreeSet<usize> = if todo.is_empty() {
            [start].into()
        } else {
            todo.iter().copied().collect()
        };
        let path = bfs(adj, set, at, &goal);
        for &n in &path[1..] {
            todo.retain(|&t| t != n);
            walk.push(n);
        }
        at = *walk.last().expect("walk");
        if path.len() < 2 {
            break; // cannot happen inside a component; guards the loop
        }
    }
    walk
}

fn bfs(
    adj: &[Vec<usize>],
    set: &BTreeSet<usize>,
    from: usize,
    goal: &BTreeSet<usize>,
) -> Vec<usize> {
    let mut prev: HashMap<usize, usize> = HashMap::new();
    let mut q = std::collections::VecDeque::from([from]);
    while let Some(n) = q.pop_front() {
        for &m in &adj[n] {
            if !set.contains(&m) || prev.contains_key(&m) || (m == from && !goal.contains(&m)) {
                continue;
            }
            prev.insert(m, n);
            if goal.contains(&m) {
                let mut path = vec![m];
                let mut c = m;
                while c != from || path.len() == 1 && m == from {
                    c = prev[&c];
                    path.push(c);
                    if c == from {
                        break;
                    }
                }
                path.reverse();
                return path;
            }
            q.push_back(m);
        }
    }
    vec![from]
}

fn tarjan(adj: &[Vec<usize>]) -> Vec<Vec<usize>> {
    struct S<'a> {
        adj: &'a [Vec<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(s: &mut S, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on[v] = true;
        for &w in s.adj[v].iter() {
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on[w] => s.low[v] = s.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut c = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on[w] = false;
                c.push(w);
                if w == v {
                    break;
                }
            }
            s.out.push(c);
        }
    }
    let n = adj.len();
    let mut s = S {
        adj,
        index: vec![None; n],
        low: vec![0; n],
        on: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(&mut s, v);
        }
    }
    s.out
}

/// Every `Cargo.toml` with a `[package]` under `root`, outside `target/`,
/// hidden directories and `tests/data/` fixtures.
fn manifests(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let rd =
            std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?;
        for e in rd {
            let p = e?.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if p.is_dir() {
                let fixture = name == "data" && dir.file_name().is_some_and(|d| d == "tests");
                if !(name == "target" || name.starts_with('.') || fixture) {
                    todo.push(p);
                }
            } else if name == "Cargo.toml" {
                let text = std::fs::read_to_string(&p)
                    .with_context(|| format!("cannot read {}", p.display()))?;
                let v: toml::Table = text
                    .parse()
                    .with_context(|| format!("malformed {}", p.display()))?;
                if v.contains_key("package") {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The crate roots of one package.
fn crate_roots(manifest: &Path) -> anyhow::Result<Vec<Root>> {
    let dir = manifest.parent().context("manifest without directory")?;
    let v: toml::Table = std::fs::read_to_string(manifest)?.parse()?;
    let pkg = v["package"]
        .get("name")
        .and_then(|n| n.as_str())
        .with_context(|| format!("{}: [package] has no name", manifest.display()))?;
    let lib_name = v
        .get("lib")
        .and_then(|l| l.get("name"))
        .and_then(|n| n.as_str())
        .unwrap_or(pkg)
        .replace('-', "_");
    let mut files: BTreeMap<PathBuf, Option<String>> = BTreeMap::new();
    let lib_path = v
        .get("lib")
        .and_then(|l| l.get("path"))
        .and_then(|p| p.as_str())
        .map(|p| dir.join(p))
        .unwrap_or_else(|| dir.join("src/lib.rs"));
    if lib_path.is_file() {
        files.insert(lib_path, Some(lib_name));
    }
    for f in ["src/main.rs", "build.rs"] {
        if dir.join(f).is_file() {
            files.insert(dir.join(f), None);
        }
    }
    for sub in ["src/bin", "tests", "benches", "examples"] {
        let Ok(rd) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for e in rd {
            let p = e?.path();
            if p.extension().is_some_and(|x| x == "rs") {
                files.insert(p, None);
            } else if p.join("main.rs").is_file() {
                files.insert(p.join("main.rs"), None);
            }
        }
    }
    for kind in ["bin", "test", "bench", "example"] {
        for t in v.get(kind).and_then(|t| t.as_array()).into_iter().flatten() {
            if let Some(p) = t.get("path").and_then(|p| p.as_str()) {
                files.entry(dir.join(p)).or_insert(None);
            }
        }
    }
    Ok(files
        .into_iter()
        .map(|(file, lib_name)| Root { lib_name, file })
        .collect())
}

impl Tree {
    /// Parses `file` (once) and builds the module for it and its children.
    fn load_module(
        &mut self,
        file: &Path,
        crate_root: &Path,
        parent: Option<usize>,
        krate: usize,
    ) -> anyhow::Result<usize> {
        if !self.parsed.contains_key(file) {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let ast = syn::parse_file(&text)
                .with_context(|| format!("cannot parse {} as Rust", file.display()))?;
            self.parsed.insert(file.to_path_buf(), ast);
        }
        let items = self.parsed[file].items.clone();
        // Where `mod x;` looks: next to a root or mod.rs, else in a directory named like the file.
        let is_dir_owner = file == crate_root
            || file
                .file_name()
                .is_some_and(|n| n == "mod.rs" || n == "main.rs" || n == "lib.rs");
        let dir = if is_dir_owner {
            file.parent()
                .context("file without directory")?
                .to_path_buf()
        } else {
            file.with_extension("")
        };
        self.module_of_items(&items, file, &dir, parent, krate, crate_root)
    }

    fn module_of_items(
        &mut self,
        items: &[syn::Item],
        file: &Path,
        dir: &Path,
        parent: Option<usize>,
        krate: usize,
        crate_root: &Path,
    ) -> anyhow::Result<usize> {
        let id = self.modules.len();
        self.modules.push(Module {
            file: file.to_path_buf(),
            parent,
            krate,
            ..Default::default()
        });
        for item in items {
            match item {
                syn::Item::Mod(m) => {
                    let name = m.ident.to_string();
                    let child = match &m.content {
                        Some((_, inner)) => self.module_of_items(
                            inner,
                            file,
                            &dir.join(&name),
                            Some(id),
                            krate,
                            crate_root,
                        )?,
                        None => {
                            let explicit = m.attrs.iter().find_map(path_attr);
                            let candidates = match explicit {
                                Some(p) => vec![file.parent().unwrap_or(dir).join(p)],
                                None => vec![
                                    dir.join(format!("{name}.rs")),
                                    dir.join(&name).join("mod.rs"),
                                ],
                            };
                            let Some(f) = candidates.into_iter().find(|c| c.is_file()) else {
                                anyhow::bail!(
                                    "{}: `mod {name};` names no file (looked for {}/{name}.rs and {}/{name}/mod.rs)",
                                    file.display(),
                                    dir.display(),
                                    dir.display()
                                );
                            };
                            self.load_module(&f, crate_root, Some(id), krate)?
                        }
                    };
                    self.modules[id].children.insert(name, child);
                }
                syn::Item::Use(u) => {
                    let mut flat = Vec::new();
                    flatten_use(&u.tree, &mut Vec::new(), &mut flat);
                    let m = &mut self.modules[id];
                    for (name, path) in flat {
                        match name {
                            Some(n) => {
                                m.imports.insert(n, path);
                            }
                            None => m.globs.push(path),
                        }
                    }
                }
                other => {
                    if let Some(name) = item_name(other) {
                        self.modules[id].items.insert(name);
                    }
                }
            }
        }
        Ok(id)
    }

    /// Resolves `path` as written in module `m`.
    fn resolve(&self, m: usize, path: &[String], depth: usize) -> Target {
        if depth > 32 || path.is_empty() {
            return Target::External;
        }
        let (mut at, rest): (usize, &[String]) = match path[0].as_str() {
            "crate" => (self.roots[self.modules[m].krate], &path[1..]),
            "self" => (m, &path[1..]),
            "super" => {
                let mut at = m;
                let mut i = 0;
                while path.get(i).is_some_and(|s| s == "super") {
                    match self.modules[at].parent {
                        Some(p) => at = p,
                        None => return Target::External,
                    }
                    i += 1;
                }
                (at, &path[i..])
            }
            "Self" | "$crate" => return Target::External,
            first => {
                let here = &self.modules[m];
                if here.children.contains_key(first)
                    || here.items.contains(first)
                    || here.imports.contains_key(first)
                {
                    (m, path)
                } else if let Some(&lib) = self.libs.get(first) {
                    (lib, &path[1..])
                } else if path.len() == 1 {
                    return Target::External;
                } else {
                    // A name from a glob import (`use super::inputs::*; inputs_item::X`)
                    match self.through_globs(m, first, depth) {
                        Some(t) => return t,
                        None => return Target::External,
                    }
                }
            }
        };
        for (i, seg) in rest.iter().enumerate() {
            let md = &self.modules[at];
            if let Some(&c) = md.children.get(seg) {
                at = c;
                continue;
            }
            if md.items.contains(seg) {
                return Target::File(md.file.clone());
            }
            if let Some(p) = md.imports.get(seg) {
                let mut full = p.clone();
                full.extend(rest[i + 1..].iter().cloned());
                return self.resolve(at, &full, depth + 1);
            }
            if let Some(t) = self.through_globs(at, seg, depth) {
                return t;
            }
            // Not found: made by a macro, or an associated item of an
            // unresolved name; count the module's file.
            return Target::File(md.file.clone());
        }
        Target::Module(at)
    }

    fn through_globs(&self, m: usize, name: &str, depth: usize) -> Option<Target> {
        for g in &self.modules[m].globs {
            if let Target::Module(src) = self.resolve(m, g, depth + 1) {
                let sm = &self.modules[src];
                if sm.items.contains(name)
                    || sm.children.contains_key(name)
                    || sm.imports.contains_key(name)
                {
                    return Some(self.resolve(src, &[name.to_string()], depth + 1));
                }
            }
        }
        None
    }
}

fn path_attr(a: &syn::Attribute) -> Option<String> {
    if !a.path().is_ident("path") {
        return None;
    }
    match &a.meta {
        syn::Meta::NameValue(nv) => match &nv.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Some(s.value()),
            _ => None,
        },
        _ => None,
    }
}

fn item_name(item: &syn::Item) -> Option<String> {
    Some(match item {
        syn::Item::Const(i) => i.ident.to_string(),
        syn::Item::Enum(i) => i.ident.to_string(),
        syn::Item::Fn(i) => i.sig.ident.to_string(),
        syn::Item::Static(i) => i.ident.to_string(),
        syn::Item::Struct(i) => i.ident.to_string(),
        syn::Item::Trait(i) => i.ident.to_string(),
        syn::Item::TraitAlias(i) => i.ident.to_string(),
        syn::Item::Type(i) => i.ident.to_string(),
        syn::Item::Union(i) => i.ident.to_string(),
        syn::Item::Macro(i) => i.ident.as_ref()?.to_string(),
        syn::Item::ExternCrate(i) => i
            .rename
            .as_ref()
            .map(|r| r.1.to_string())
            .unwrap_or_else(|| i.ident.to_string()),
        _ => return None,
    })
}

/// Flattens a use tree into (name it binds, or None for a glob; full path).
fn flatten_use(
    t: &syn::UseTree,
    prefix: &mut Vec<String>,
    out: &mut Vec<(Option<String>, Vec<String>)>,
) {
    match t {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            flatten_use(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => {
            let name = n.ident.to_string();
            if name == "self" {
                if let Some(last) = prefix.last() {
                    out.push((Some(last.clone()), prefix.clone()));
                }
            } else {
                let mut p = prefix.clone();
                p.push(name.clone());
                out.push((Some(name), p));
            }
        }
        syn::UseTree::Rename(r) => {
            let mut p = prefix.clone();
            if r.ident != "self" {
                p.push(r.ident.to_string());
            }
            out.push((Some(r.rename.to_string()), p));
        }
        syn::UseTree::Glob(_) => out.push((None, prefix.clone())),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                flatten_use(t, prefix, out);
            }
        }
    }
}

/// Collects the files that the paths of one file refer to.
struct Refs<'a> {
    tree: &'a Tree,
    /// The module whose scope resolves names (changes inside inline modules).
    module: usize,
    file: PathBuf,
    out: Vec<(PathBuf, Reference)>,
}

impl Refs<'_> {
    fn reference(&mut self, path: Vec<String>, line: usize) {
        let t = self.tree.resolve(self.module, &path, 0);
        let to = match t {
            Target::Module(m) => self.tree.modules[m].file.clone(),
            Target::File(f) => f,
            Target::External => return,
        };
        if to != self.file {
            self.out.push((
                to,
                Reference {
                    line,
                    path: path.join("::"),
                },
            ));
        }
    }
}

impl<'ast> Visit<'ast> for Refs<'_> {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        let Some((_, items)) = &m.content else {
            return; // `mod child;` is not an edge
        };
        let name = m.ident.to_string();
        let saved = self.module;
        if let Some(&c) = self.tree.modules[saved].children.get(&name) {
            self.module = c;
        }
        for i in items {
            self.visit_item(i);
        }
        self.module = saved;
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let mut flat = Vec::new();
        flatten_use(&u.tree, &mut Vec::new(), &mut flat);
        let line = u.span().start().line;
        for (_, path) in flat {
            self.reference(path, line);
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segs: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        // One segment is a local name or one a `use` line already counted.
        if segs.len() > 1 {
            self.reference(segs, p.span().start().line);
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.visit_path(&m.path);
        // Arguments of format!, assert!, vec!, matches!... are expressions
        // (or a pattern/type after the first); parse what parses.
        use syn::parse::Parser;
        let exprs = syn::punctuated::Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated;
        if let Ok(list) = exprs.parse2(m.tokens.clone()) {
            for e in &list {
                self.visit_expr(e);
            }
        } else {
            let first_expr = |input: syn::parse::ParseStream| {
                let e: syn::Expr = input.parse()?;
                let _: proc_macro2::TokenStream = input.parse()?;
                Ok(e)
            };
            if let Ok(e) = first_expr.parse2(m.tokens.clone()) {
                self.visit_expr(&e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/cycles")
            .join(name)
    }

    fn rel(g: &Cycle, root: &Path) -> Vec<String> {
        g.files
            .iter()
            .map(|f| f.strip_prefix(root).unwrap().display().to_string())
            .collect()
    }

    /// Issue 14: the seeded cycle: a -> b by a `use` line, b -> c by an inline
    /// `super::` path, c -> a by an inline `crate::` path inside `format!`.
    #[test]
    fn catches_the_seeded_cycle() {
        let root = fixture("seeded");
        let g = Graph::of_workspace(&root).unwrap();
        let cycles = g.cycles();
        assert_eq!(cycles.len(), 1, "{cycles:#?}");
        assert_eq!(rel(&cycles[0], &root), ["src/a.rs", "src/b.rs", "src/c.rs"]);
        let text = cycles[0].describe(&root);
        assert!(text.contains("src/b.rs:"), "{text}");
        assert!(text.contains("super::c::helper"), "{text}");
        assert!(text.contains("crate::a::A"), "{text}");
    }

    /// Parents declare and re-export their children; children use the
    /// parent's items; another crate of the workspace uses the library: no cycle.
    #[test]
    fn parent_declarations_and_reexports_are_not_cycles() {
        let root = fixture("acyclic");
        let g = Graph::of_workspace(&root).unwrap();
        assert!(g.cycles().is_empty(), "{:#?}", g.cycles());
        let lib = root.join("src/lib.rs");
        let leaf = root.join("src/leaf.rs");
        let user = root.join("src/user.rs");
        let bin = root.join("src/main.rs");
        // user.rs reaches leaf.rs through lib.rs's re-export: the edge goes to leaf.rs
        assert!(g.edges[&user].contains_key(&leaf), "{:#?}", g.edges);
        assert!(!g.edges.get(&lib).is_some_and(|e| e.contains_key(&user)));
        // the binary names the library by its crate name
        assert!(g.edges[&bin].contains_key(&user), "{:#?}", g.edges);
    }

    /// A parent that re-exports a child and a child that uses an item the
    /// parent defines form a cycle (the edge is the name, not the `mod`).
    #[test]
    fn reexport_plus_child_using_parent_item_is_a_cycle() {
        let root = fixture("reexport");
        let cycles = Graph::of_workspace(&root).unwrap().cycles();
        assert_eq!(cycles.len(), 1, "{cycles:#?}");
        assert_eq!(rel(&cycles[0], &root), ["src/child.rs", "src/lib.rs"]);
    }

    /// Issue 14, on this repository: the report's leaves refer to no other file
    /// of the workspace, and no report file is in a cycle (the
    /// `report/{evidence, expect, figures, inputs}` cycle and the scenario
    /// crossing stay broken while other areas still have theirs).
    #[test]
    fn the_report_has_no_cycle_and_its_leaves_are_leaves() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let g = Graph::of_workspace(root).unwrap();
        for leaf in ["lab/src/report/spec.rs", "lab/src/report/error.rs"] {
            let out = g.edges.get(&root.join(leaf));
            assert!(
                out.is_none_or(|e| e.is_empty()),
                "{leaf} refers to {out:#?}"
            );
        }
        let report = root.join("lab/src/report");
        for c in g.cycles() {
            assert!(
                !c.files.iter().any(|f| f.starts_with(&report)),
                "{}",
                c.describe(root)
            );
        }
    }
}
