// The example app of @tessera/sync: pair as a phone, keep a collection's records in this browser,
// edit them online or offline. Everything Tessera-specific is the SDK's; the rest is plain RxDB and DOM.

import { createRxDatabase } from 'rxdb';
import { getRxStorageLocalstorage } from 'rxdb/plugins/storage-localstorage';
import { pairDevice, syncCollection, tesseraConflictHandler, tesseraSchema } from '@tessera/sync';

const PAIRING = 'tessera-example-pairing'; // the device token is shown once: the app keeps it
const CHOSEN = 'tessera-example-collection';
const SERVER_FIELDS = new Set(['id', 'version', 'updated_at']);
const $ = (id) => document.getElementById(id);

function status(text) {
  $('status').textContent = text;
}

function showPairing(error) {
  $('app').hidden = true;
  const form = $('pair');
  form.hidden = false;
  form.server.value ||= window.location.origin;
  $('pair-error').textContent = error || '';
  status('Not paired');
}

$('pair').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = event.target;
  $('pair-error').textContent = '';
  status('Pairing…');
  try {
    const pairing = await pairDevice(
      form.qr.value.trim()
        ? { qr: form.qr.value.trim(), name: form.name.value }
        : { server: form.server.value, pin: form.pin.value, name: form.name.value },
    );
    localStorage.setItem(PAIRING, JSON.stringify(pairing));
    form.hidden = true;
    await start(pairing);
  } catch (err) {
    showPairing(`Could not pair: ${err.message} (${err.code || 'error'})`);
  }
});

async function start(pairing) {
  const slugs = pairing.collections;
  if (!slugs.length) {
    status('Paired, but the workspace has no collections yet.');
    return;
  }
  const slug = slugs.includes(localStorage.getItem(CHOSEN)) ? localStorage.getItem(CHOSEN) : slugs[0];
  const select = $('collection');
  select.replaceChildren(...slugs.map((s) => new Option(s, s, s === slug, s === slug)));
  select.onchange = () => {
    localStorage.setItem(CHOSEN, select.value);
    window.location.reload();
  };

  // One local database per device and collection; localStorage keeps it across reloads and offline.
  const db = await createRxDatabase({
    name: `tessera-example-${pairing.device.id}-${slug}`,
    storage: getRxStorageLocalstorage(),
    multiInstance: false,
  });
  await db.addCollections({ records: { schema: tesseraSchema(), conflictHandler: tesseraConflictHandler } });
  $('app').hidden = false;
  render(db.records);

  const sync = await syncCollection({
    collection: db.records,
    remoteName: slug,
    url: pairing.websocketUrl,
    token: pairing.token,
  });
  let paused = false;
  let lastError = null;
  const showConnection = (up) =>
    status(
      paused
        ? 'Sync paused: changes are kept on this device.'
        : up
          ? `Online: syncing “${slug}”.`
          : 'Offline: changes are kept on this device and sent when the connection is back.',
    );
  sync.connection.connected$.subscribe((up) => {
    lastError = null;
    showConnection(up);
  });
  sync.error$.subscribe((err) => {
    if (!err.retryable) {
      // Revoked in the console (or the sync was canceled): this device must pair again.
      localStorage.removeItem(PAIRING);
      sync.cancel();
      showPairing(`This device can no longer sync: ${err.message}`);
    } else if (err.code !== lastError) {
      lastError = err.code;
      console.warn('tessera sync:', err.code, err.message);
    }
  });
  $('pause').onclick = async () => {
    paused = !paused;
    await (paused ? sync.pause() : sync.resume());
    $('pause').textContent = paused ? 'Resume sync' : 'Pause sync';
    showConnection(sync.connection.connected$.getValue());
  };
  $('forget').onclick = async () => {
    await sync.cancel();
    await db.remove();
    localStorage.removeItem(PAIRING);
    window.location.reload();
  };
}

function render(collection) {
  const body = $('records').tBodies[0];
  collection.find().$.subscribe((docs) => {
    const focused = document.activeElement && document.activeElement.dataset.key;
    const focusedId = focused && document.activeElement.closest('tr').dataset.id;
    body.replaceChildren(...docs.map((doc) => row(doc)));
    if (focused) {
      const again = body.querySelector(`tr[data-id="${CSS.escape(focusedId)}"] input[data-key="${CSS.escape(focused)}"]`);
      if (again) again.focus();
    }
  });
}

function row(doc) {
  const data = doc.toJSON();
  const tr = document.createElement('tr');
  tr.dataset.id = doc.id;
  const name = document.createElement('th');
  name.scope = 'row';
  name.textContent = doc.id;
  const fields = document.createElement('td');
  for (const [key, value] of Object.entries(data)) {
    if (SERVER_FIELDS.has(key) || key.startsWith('_') || (value !== null && typeof value === 'object')) continue;
    const label = document.createElement('label');
    const input = document.createElement('input');
    input.dataset.key = key;
    input.value = value === null ? '' : String(value);
    input.type = typeof value === 'number' ? 'number' : 'text';
    input.addEventListener('change', () => {
      const typed = typeof value === 'number' ? Number(input.value) : typeof value === 'boolean' ? input.value === 'true' : input.value;
      // Saved locally at once; the SDK sends it when it can, and the server merges field by field.
      doc.getLatest().incrementalPatch({ [key]: typed });
    });
    label.append(`${key} `, input);
    fields.append(label);
  }
  const version = document.createElement('td');
  version.textContent = data.version === undefined ? 'not sent yet' : String(data.version);
  tr.append(name, fields, version);
  return tr;
}

const saved = localStorage.getItem(PAIRING);
if (saved) {
  start(JSON.parse(saved)).catch((err) => status(`Could not start: ${err.message}`));
} else {
  showPairing();
}
