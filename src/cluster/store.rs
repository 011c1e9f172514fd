//! A reflector store of summaries plus an index by namespace, so a request
//! finds its namespace's objects in O(1) without scanning the store.
//!
//! [`CacheWriter`] is owned by the watch task and applies watcher events the
//! way kube's reflector does (a relist is buffered between `Init` and
//! `InitDone`, then swapped in whole, so a stale cache keeps serving while the
//! watch recovers); [`Cache`] is the shared, read-only side.
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{Lookup, ObjectRef, Store};
use kube::runtime::watcher::Event;

use super::summary::{Payload, Summary};

type ByName<P> = HashMap<String, Arc<Summary<P>>>;

/// The read side of one resource's cache.
pub struct Cache<P: Payload> {
    store: Store<Summary<P>>,
    by_ns: RwLock<HashMap<String, ByName<P>>>,
    synced: AtomicBool,
    /// Bumped on every change; waiters sleep on `changed`.
    generation: Mutex<u64>,
    changed: Condvar,
}

/// The write side, owned by the watch task.
pub struct CacheWriter<P: Payload> {
    writer: Writer<Summary<P>>,
    cache: Arc<Cache<P>>,
}

/// A new, empty, unsynced cache.
pub fn cache<P: Payload>() -> (Arc<Cache<P>>, CacheWriter<P>) {
    let writer = Writer::<Summary<P>>::new(());
    let cache = Arc::new(Cache {
        store: writer.as_reader(),
        by_ns: RwLock::new(HashMap::new()),
        synced: AtomicBool::new(false),
        generation: Mutex::new(0),
        changed: Condvar::new(),
    });
    (cache.clone(), CacheWriter { writer, cache })
}

impl<P: Payload> CacheWriter<P> {
    /// Whether its cache has listed once.
    pub fn cache_synced(&self) -> bool {
        self.cache.synced()
    }

    /// Apply one watcher event. Returns true when it completed a (re)list.
    pub fn apply(&mut self, ev: &Event<Summary<P>>) -> bool {
        self.writer.apply_watcher_event(ev);
        let c = &self.cache;
        let done = matches!(ev, Event::InitDone);
        if P::NAMESPACED {
            match ev {
                Event::Apply(o) => {
                    let ns = o.namespace.clone().unwrap_or_default();
                    let stored = c.store.get(&o.to_object_ref(()));
                    if let Some(stored) = stored {
                        write(&c.by_ns)
                            .entry(ns)
                            .or_default()
                            .insert(o.name.clone(), stored);
                    }
                }
                Event::Delete(o) => {
                    let ns = o.namespace.clone().unwrap_or_default();
                    let mut idx = write(&c.by_ns);
                    if let Some(m) = idx.get_mut(&ns) {
                        m.remove(&o.name);
                        if m.is_empty() {
                            idx.remove(&ns);
                        }
                    }
                }
                Event::InitDone => {
                    let mut fresh: HashMap<String, ByName<P>> = HashMap::new();
                    for o in c.store.state() {
                        fresh
                            .entry(o.namespace.clone().unwrap_or_default())
                            .or_default()
                            .insert(o.name.clone(), o);
                    }
                    *write(&c.by_ns) = fresh;
                }
                Event::Init | Event::InitApply(_) => {}
            }
        }
        if done {
            c.synced.store(true, Ordering::SeqCst);
        }
        if matches!(ev, Event::Apply(_) | Event::Delete(_) | Event::InitDone) {
            let mut g = match c.generation.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            *g = g.wrapping_add(1);
            c.changed.notify_all();
        }
        done
    }
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    match l.write() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    match l.read() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl<P: Payload> Cache<P> {
    /// Whether the first list has completed. Stays true through watch errors
    /// and relists: a stale cache keeps serving.
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::SeqCst)
    }

    /// A cluster-scoped object by name.
    pub fn get(&self, name: &str) -> Option<Arc<Summary<P>>> {
        self.store.get(&ObjectRef::new(name))
    }

    /// The names of the objects whose payload passes `keep`, sorted. Scans
    /// the whole cache: for small cluster-scoped ones, behind a memo
    /// ([`Cache::generation`]).
    pub fn names_where(&self, keep: impl Fn(&P) -> bool) -> Vec<String> {
        let mut v: Vec<String> = self
            .all()
            .iter()
            .filter(|s| keep(&s.payload))
            .map(|s| s.name.clone())
            .collect();
        v.sort();
        v
    }

    /// Every object (a copy of the handles: for small caches).
    pub fn all(&self) -> Vec<Arc<Summary<P>>> {
        self.store.state()
    }

    /// A number that changes whenever the cache does.
    pub fn generation(&self) -> u64 {
        match self.generation.lock() {
            Ok(g) => *g,
            Err(p) => *p.into_inner(),
        }
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// Apply `f` to the objects of one namespace (nothing when it has none).
    pub fn with_namespace<R>(
        &self,
        ns: &str,
        f: impl FnOnce(&mut dyn Iterator<Item = &Summary<P>>) -> R,
    ) -> R {
        let idx = read(&self.by_ns);
        let mut it = idx
            .get(ns)
            .into_iter()
            .flat_map(|m| m.values().map(|a| a.as_ref()));
        f(&mut it)
    }

    /// Wait until `found` returns Some, the cache changes stop helping, or
    /// `budget` runs out. Blocks the calling thread; call it off the runtime.
    pub fn wait_for<R>(
        &self,
        budget: Duration,
        mut found: impl FnMut(&Self) -> Option<R>,
    ) -> Option<R> {
        if let Some(r) = found(self) {
            return Some(r);
        }
        let deadline = Instant::now() + budget;
        let mut g = match self.generation.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        loop {
            // Checked under the lock: a change between the check and the wait
            // would bump the generation first and wake us.
            if let Some(r) = found(self) {
                return Some(r);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            let seen = *g;
            let (g2, _) = match self
                .changed
                .wait_timeout_while(g, deadline - now, |gen| *gen == seen)
            {
                Ok(x) => x,
                Err(p) => p.into_inner(),
            };
            g = g2;
        }
    }
}
