//! Spin's key-value interface, `fermyon:spin/key-value@2.0.0`, so that
//! components built with `spin_sdk::key_value` run here as under Spin.
//!
//! Spin defines one store by itself, `default`; a component may open the
//! stores its manifest lists in `key_value_stores`. What a guest can
//! observe follows Spin 4 (`factor-key-value`):
//!
//! - an app whose component lists a store that is not defined does not
//!   load ("unknown key_value_stores label");
//! - `open` of a store the component does not list is `access-denied`;
//!   past [`MAX_OPEN_STORES`] handles at once it is `store-table-full`;
//! - `get` of a value over [`MAX_RESULT_BYTES`] is `other`;
//! - `delete` of a missing key is no error.
//!
//! One difference, invisible to a guest: the stores live in the host's
//! memory for as long as it runs, where `spin up` keeps the default store
//! in `.spin/sqlite_key_value.db` (a SQLite file) across restarts. A guest
//! cannot tell a store that kept nothing from one it never wrote to, so
//! Xtream keeps only what it can rebuild there.

use anyhow::{Result, ensure};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use wasmtime::component::Resource;

/// The store every Spin app has without configuring it.
pub const DEFAULT_STORE: &str = "default";

/// Most stores one instance may hold open at once (Spin's table capacity).
pub const MAX_OPEN_STORES: usize = 256;

/// Largest value `get` hands a guest (Spin's `MAX_HOST_BUFFERED_BYTES`).
pub const MAX_RESULT_BYTES: usize = 128 << 20;

mod bindings {
    // The published `fermyon:spin/key-value@2.0.0` interface, item for item.
    wasmtime::component::bindgen!({
        inline: r#"
            package fermyon:spin@2.0.0;

            interface key-value {
                resource store {
                    open: static func(label: string) -> result<store, error>;
                    get: func(key: string) -> result<option<list<u8>>, error>;
                    set: func(key: string, value: list<u8>) -> result<_, error>;
                    delete: func(key: string) -> result<_, error>;
                    exists: func(key: string) -> result<bool, error>;
                    get-keys: func() -> result<list<string>, error>;
                }

                variant error {
                    store-table-full,
                    no-such-store,
                    access-denied,
                    other(string)
                }
            }

            world host {
                import key-value;
            }
        "#,
        additional_derives: [PartialEq],
    });
}

use bindings::fermyon::spin::key_value as wit;
pub use bindings::fermyon::spin::key_value::{Error, Store};

/// One store's keys and values.
type Entries = RwLock<HashMap<String, Vec<u8>>>;

/// The app's stores, shared by every instance of every component (each
/// sees only those its manifest lists).
#[derive(Clone)]
pub struct KeyValueStores(Arc<HashMap<String, Arc<Entries>>>);

impl Default for KeyValueStores {
    /// Spin's stores when the runtime configuration defines none: only
    /// `default`.
    fn default() -> Self {
        KeyValueStores(Arc::new(HashMap::from([(
            DEFAULT_STORE.to_owned(),
            Arc::default(),
        )])))
    }
}

impl std::fmt::Debug for KeyValueStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl KeyValueStores {
    /// Checks that every label `component` lists is a store of the app, as
    /// Spin does before it serves anything.
    pub fn check_labels(&self, component: &str, labels: &[String]) -> Result<()> {
        for label in labels {
            ensure!(
                self.0.contains_key(label),
                "unknown key_value_stores label {label:?} for component {component:?}: \
                 the embedded host defines only the `{DEFAULT_STORE}` store"
            );
        }
        Ok(())
    }
}

/// One instance's side of the interface: the stores its component may
/// open and the handles its guest holds.
#[derive(Debug)]
pub struct KeyValueState {
    stores: KeyValueStores,
    allowed: Arc<HashSet<String>>,
    open: HashMap<u32, Arc<Entries>>,
    next_rep: u32,
}

impl KeyValueState {
    /// The state of a new instance of a component that lists `allowed`.
    pub fn new(stores: KeyValueStores, allowed: Arc<HashSet<String>>) -> Self {
        KeyValueState {
            stores,
            allowed,
            open: HashMap::new(),
            next_rep: 0,
        }
    }

    fn entries(&self, store: &Resource<Store>) -> Result<&Arc<Entries>, Error> {
        self.open
            .get(&store.rep())
            .ok_or_else(|| Error::Other("invalid store".into()))
    }
}

/// A lock poisoned by a panicking holder still guards whole values: a map
/// insert or remove either happened or did not.
fn read(entries: &Entries) -> std::sync::RwLockReadGuard<'_, HashMap<String, Vec<u8>>> {
    entries
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write(entries: &Entries) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Vec<u8>>> {
    entries
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl wit::HostStore for KeyValueState {
    fn open(&mut self, label: String) -> Result<Resource<Store>, Error> {
        if !self.allowed.contains(&label) {
            return Err(Error::AccessDenied);
        }
        let entries = self.stores.0.get(&label).ok_or(Error::NoSuchStore)?.clone();
        if self.open.len() >= MAX_OPEN_STORES {
            return Err(Error::StoreTableFull);
        }
        let rep = self.next_rep;
        self.next_rep = self.next_rep.wrapping_add(1);
        self.open.insert(rep, entries);
        Ok(Resource::new_own(rep))
    }

    fn get(&mut self, store: Resource<Store>, key: String) -> Result<Option<Vec<u8>>, Error> {
        let entries = read(self.entries(&store)?);
        match entries.get(&key) {
            Some(value) if value.len() > MAX_RESULT_BYTES => Err(Error::Other(format!(
                "query result exceeds limit of {MAX_RESULT_BYTES} bytes"
            ))),
            value => Ok(value.cloned()),
        }
    }

    fn set(&mut self, store: Resource<Store>, key: String, value: Vec<u8>) -> Result<(), Error> {
        write(self.entries(&store)?).insert(key, value);
        Ok(())
    }

    fn delete(&mut self, store: Resource<Store>, key: String) -> Result<(), Error> {
        write(self.entries(&store)?).remove(&key);
        Ok(())
    }

    fn exists(&mut self, store: Resource<Store>, key: String) -> Result<bool, Error> {
        Ok(read(self.entries(&store)?).contains_key(&key))
    }

    fn get_keys(&mut self, store: Resource<Store>) -> Result<Vec<String>, Error> {
        Ok(read(self.entries(&store)?).keys().cloned().collect())
    }

    fn drop(&mut self, store: Resource<Store>) -> wasmtime::Result<()> {
        self.open.remove(&store.rep());
        Ok(())
    }
}

impl wit::Host for KeyValueState {}

/// Adds `fermyon:spin/key-value@2.0.0` to `linker`, reaching each store's
/// [`KeyValueState`] through `getter`.
pub(crate) fn add_to_linker<T: 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    getter: fn(&mut T) -> &mut KeyValueState,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, wasmtime::component::HasSelf<KeyValueState>>(linker, getter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wit::HostStore;

    fn instance(stores: &KeyValueStores, allowed: &[&str]) -> KeyValueState {
        let allowed = allowed.iter().map(|label| label.to_string()).collect();
        KeyValueState::new(stores.clone(), Arc::new(allowed))
    }

    #[test]
    fn values_set_by_one_instance_are_read_by_the_next() {
        let stores = KeyValueStores::default();
        let mut first = instance(&stores, &[DEFAULT_STORE]);
        let store = first.open(DEFAULT_STORE.into()).unwrap();
        let same = Resource::<Store>::new_borrow(store.rep());
        first.set(same, "a".into(), b"one".to_vec()).unwrap();
        first.drop(store).unwrap();

        let mut second = instance(&stores, &[DEFAULT_STORE]);
        let store = second.open(DEFAULT_STORE.into()).unwrap();
        let handle = || Resource::<Store>::new_borrow(store.rep());
        assert_eq!(second.get(handle(), "a".into()), Ok(Some(b"one".to_vec())));
        assert_eq!(second.get(handle(), "b".into()), Ok(None));
        assert_eq!(second.exists(handle(), "a".into()), Ok(true));
        assert_eq!(second.get_keys(handle()), Ok(vec!["a".to_owned()]));
        second.set(handle(), "a".into(), b"two".to_vec()).unwrap();
        assert_eq!(second.get(handle(), "a".into()), Ok(Some(b"two".to_vec())));
        second.delete(handle(), "a".into()).unwrap();
        assert_eq!(second.exists(handle(), "a".into()), Ok(false));
        // Deleting what is not there is no error, as in Spin.
        assert_eq!(second.delete(handle(), "a".into()), Ok(()));
    }

    #[test]
    fn a_store_the_component_does_not_list_is_access_denied() {
        let stores = KeyValueStores::default();
        let mut unlisted = instance(&stores, &[]);
        assert_eq!(
            unlisted.open(DEFAULT_STORE.into()).map(|s| s.rep()),
            Err(Error::AccessDenied)
        );
        // Listed or not, an undefined label is refused the same way:
        // Spin checks the list first.
        assert_eq!(
            unlisted.open("other".into()).map(|s| s.rep()),
            Err(Error::AccessDenied)
        );
    }

    #[test]
    fn an_instance_holds_at_most_the_table_capacity_of_stores() {
        let stores = KeyValueStores::default();
        let mut greedy = instance(&stores, &[DEFAULT_STORE]);
        let handles: Vec<_> = (0..MAX_OPEN_STORES)
            .map(|_| greedy.open(DEFAULT_STORE.into()).unwrap())
            .collect();
        assert_eq!(
            greedy.open(DEFAULT_STORE.into()).map(|s| s.rep()),
            Err(Error::StoreTableFull)
        );
        let mut handles = handles.into_iter();
        greedy.drop(handles.next().unwrap()).unwrap();
        assert!(greedy.open(DEFAULT_STORE.into()).is_ok());
    }

    #[test]
    fn only_defined_stores_may_be_listed() {
        let stores = KeyValueStores::default();
        assert!(stores.check_labels("legacy", &["default".into()]).is_ok());
        let refused = stores
            .check_labels("legacy", &["default".into(), "cache".into()])
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("unknown key_value_stores label \"cache\" for component \"legacy\""),
            "{refused}"
        );
    }
}
