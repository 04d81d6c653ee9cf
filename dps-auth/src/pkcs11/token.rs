//! [`Pkcs11Token`]: one logged-in token of a loaded module, and its pool of sessions.
//!
//! PKCS#11 login state belongs to the application, not to a session (PKCS#11 v2.40 §5.6
//! `C_Login`: "all sessions … become logged in"), and lasts while at least one session is
//! open. So each token is logged in once, through a session kept open for the token's
//! lifetime, and signing borrows sessions from a pool: a session runs one operation at a time
//! (cryptoki's `Session` is `Send` but not `Sync`), so concurrent devices each take one, and
//! the pool grows to the concurrency actually seen (capped) instead of one session per device.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::{Attribute, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

use super::error::Pkcs11Error;
use super::uri::Pkcs11Uri;

/// Idle sessions kept per token; more are opened under load and closed when returned.
const MAX_IDLE_SESSIONS: usize = 32;

/// One context per module path for the whole process: a module may be `C_Initialize`d only
/// once per process (PKCS#11 v2.40 §5.4), and it is never finalized because keys may outlive
/// any one owner.
fn module(path: &Path) -> Result<Pkcs11, Pkcs11Error> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut modules = MODULES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(ctx) = modules.get(path) {
        return Ok(ctx.clone());
    }
    if !path.exists() {
        return Err(Pkcs11Error::ModuleUnavailable {
            path: path.to_owned(),
            reason: "no such file".into(),
        });
    }
    let unavailable = |e: CkError| Pkcs11Error::ModuleUnavailable {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let ctx = Pkcs11::new(path).map_err(unavailable)?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(unavailable(e)),
    }
    modules.insert(path.to_owned(), ctx.clone());
    Ok(ctx)
}

/// Resolves the module path: the explicit one, else the URI's `module-path`, else
/// [`MODULE_ENV`](super::MODULE_ENV).
pub(crate) fn module_path(
    explicit: Option<&Path>,
    uri: &Pkcs11Uri,
) -> Result<PathBuf, Pkcs11Error> {
    explicit
        .map(Path::to_owned)
        .or_else(|| uri.module_path().map(Path::to_owned))
        .or_else(|| std::env::var_os(super::MODULE_ENV).map(PathBuf::from))
        .ok_or(Pkcs11Error::NoModule)
}

/// Open tokens by module path and label: a token is logged in once per process.
type TokenCache = HashMap<(PathBuf, String), Weak<TokenInner>>;

/// A logged-in token: cheap to clone, shared by every key in it. Tokens are cached per module
/// and label, so opening many keys of one token logs in once.
#[derive(Clone)]
pub struct Pkcs11Token {
    pub(crate) inner: Arc<TokenInner>,
}

pub(crate) struct TokenInner {
    ctx: Pkcs11,
    slot: Slot,
    label: String,
    /// Keeps the login alive (see the module docs); also used for object management.
    _login_session: Mutex<Session>,
    idle: Mutex<Vec<Session>>,
}

impl fmt::Debug for Pkcs11Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Token")
            .field("label", &self.inner.label)
            .field("slot", &self.inner.slot.id())
            .finish_non_exhaustive()
    }
}

impl Pkcs11Token {
    /// Opens (or reuses) the token `uri` names, in the module at `module` (else the URI's
    /// `module-path`, else [`MODULE_ENV`](super::MODULE_ENV)), and logs in as the user with the
    /// URI's PIN. A token already open in this process (same module and label) is shared as
    /// it is: it is logged in already, so the PIN is not checked again.
    ///
    /// # Errors
    /// [`Pkcs11Error::NoModule`], [`Pkcs11Error::ModuleUnavailable`],
    /// [`Pkcs11Error::TokenNotFound`], [`Pkcs11Error::WrongPin`], [`Pkcs11Error::PinMissing`]…
    pub fn open(module: Option<&Path>, uri: &Pkcs11Uri) -> Result<Self, Pkcs11Error> {
        static TOKENS: OnceLock<Mutex<TokenCache>> = OnceLock::new();
        let path = module_path(module, uri)?;
        let ctx = self::module(&path)?;
        let wanted = uri
            .token
            .clone()
            .or_else(|| uri.serial.clone())
            .unwrap_or_default();
        let mut tokens = TOKENS
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(inner) = tokens
            .get(&(path.clone(), wanted.clone()))
            .and_then(Weak::upgrade)
        {
            return Ok(Self { inner });
        }
        let slot = find_slot(&ctx, uri, &wanted)?;
        let session = ctx
            .open_rw_session(slot)
            .or_else(|_| ctx.open_ro_session(slot))
            .map_err(|e| Pkcs11Error::device("C_OpenSession", &e))?;
        let token_info = ctx
            .get_token_info(slot)
            .map_err(|e| Pkcs11Error::device("C_GetTokenInfo", &e))?;
        if token_info.login_required() {
            let pin = uri.pin()?.ok_or(Pkcs11Error::PinMissing)?;
            let pin = AuthPin::from(pin.as_str());
            match session.login(UserType::User, Some(&pin)) {
                Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
                Err(e) => return Err(Pkcs11Error::device("C_Login", &e)),
            }
        }
        tracing::debug!(token = %wanted, slot = slot.id(), "opened PKCS#11 token");
        let inner = Arc::new(TokenInner {
            ctx,
            slot,
            label: wanted.clone(),
            _login_session: Mutex::new(session),
            idle: Mutex::default(),
        });
        tokens.insert((path, wanted), Arc::downgrade(&inner));
        Ok(Self { inner })
    }

    /// The token's label (or the serial number it was found by).
    #[must_use]
    pub fn label(&self) -> &str {
        &self.inner.label
    }

    /// Runs `f` with a session of the pool (opened if none is idle).
    pub(crate) fn with_session<T>(
        &self,
        f: impl FnOnce(&Session) -> Result<T, Pkcs11Error>,
    ) -> Result<T, Pkcs11Error> {
        let idle = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        let session = match idle {
            Some(session) => session,
            None => self
                .inner
                .ctx
                .open_rw_session(self.inner.slot)
                .or_else(|_| self.inner.ctx.open_ro_session(self.inner.slot))
                .map_err(|e| Pkcs11Error::device("C_OpenSession", &e))?,
        };
        let result = f(&session);
        // A session that failed may be broken (token removed, handle invalid): close it rather
        // than hand it to the next caller; the login lives on in the login session.
        if result.is_ok() {
            let mut idle = self
                .inner
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if idle.len() < MAX_IDLE_SESSIONS {
                idle.push(session);
            }
        }
        result
    }

    /// Finds exactly one object of `class`-like template `base` plus the URI's label and id.
    pub(crate) fn find_object(
        &self,
        uri: &Pkcs11Uri,
        mut template: Vec<Attribute>,
    ) -> Result<ObjectHandle, Pkcs11Error> {
        let mut what = Vec::new();
        if let Some(label) = &uri.object {
            template.push(Attribute::Label(label.as_bytes().to_vec()));
            what.push(format!("object={label:?}"));
        }
        if let Some(id) = &uri.id {
            template.push(Attribute::Id(id.clone()));
            what.push(format!("id={id:02x?}"));
        }
        if what.is_empty() {
            return Err(Pkcs11Error::InvalidUri {
                reason: "it names no `object` nor `id`",
            });
        }
        let found = self.with_session(|s| {
            s.find_objects(&template)
                .map_err(|e| Pkcs11Error::device("C_FindObjects", &e))
        })?;
        found
            .first()
            .copied()
            .ok_or_else(|| Pkcs11Error::ObjectNotFound {
                what: what.join(";"),
            })
    }

    /// Reads attributes of `object`.
    pub(crate) fn attributes(
        &self,
        object: ObjectHandle,
        types: &[cryptoki::object::AttributeType],
    ) -> Result<Vec<Attribute>, Pkcs11Error> {
        self.with_session(|s| {
            s.get_attributes(object, types)
                .map_err(|e| Pkcs11Error::device("C_GetAttributeValue", &e))
        })
    }

    /// Whether the token offers `mechanism`.
    pub(crate) fn require(
        &self,
        mechanism: cryptoki::mechanism::MechanismType,
        name: &'static str,
    ) -> Result<(), Pkcs11Error> {
        let list = self
            .inner
            .ctx
            .get_mechanism_list(self.inner.slot)
            .map_err(|e| Pkcs11Error::device("C_GetMechanismList", &e))?;
        if list.contains(&mechanism) {
            Ok(())
        } else {
            Err(Pkcs11Error::UnsupportedMechanism { mechanism: name })
        }
    }
}

fn find_slot(ctx: &Pkcs11, uri: &Pkcs11Uri, wanted: &str) -> Result<Slot, Pkcs11Error> {
    let slots = ctx
        .get_slots_with_token()
        .map_err(|e| Pkcs11Error::device("C_GetSlotList", &e))?;
    for slot in slots {
        let Ok(info) = ctx.get_token_info(slot) else {
            continue;
        };
        let label_ok = uri.token.as_deref().is_none_or(|l| info.label() == l);
        let serial_ok = uri
            .serial
            .as_deref()
            .is_none_or(|s| info.serial_number() == s);
        if label_ok && serial_ok {
            return Ok(slot);
        }
    }
    Err(Pkcs11Error::TokenNotFound {
        label: wanted.to_owned(),
    })
}
