// offkey web: the sign-in page and Settings -> API Keys.
//
// Served by `offkey serve` under a strict Content-Security-Policy: no inline script or style, so
// every behaviour lives here and every look in app.css. The page talks to the JSON API of
// spec/api.md with the HttpOnly session cookie; it never sees or stores the session token.
// A whole API key is only ever held in one DOM node (#new-key-value) while its panel is open,
// and that node is emptied when the panel closes. Nothing here logs, stores or routes a key.
//
// Text from the server (memos, names, locations) is only ever set with textContent.

(function () {
  'use strict';

  var DAY_MS = 24 * 60 * 60 * 1000;
  var STALE_DAYS = 90;
  var UNUSED_GRACE_DAYS = 7;
  var ROTATE_DAYS = 90;
  var MEMO_MAX = 100;
  // "Until the new key is first used" still ends at the latest after this long.
  var FIRST_USE_MAX_SECONDS = 7 * 24 * 60 * 60;

  // ---- HTTP ---------------------------------------------------------------------------------

  function ApiError(status, code, message) {
    this.status = status;
    this.code = code;
    this.message = message;
  }

  // One way to call the API: same-origin cookie, JSON, and the CSRF header on every state change.
  function api(method, path, body) {
    var headers = { Accept: 'application/json' };
    if (method !== 'GET' && method !== 'HEAD') {
      headers['X-Offkey-CSRF'] = '1';
    }
    var init = {
      method: method,
      headers: headers,
      credentials: 'same-origin',
      cache: 'no-store',
      redirect: 'error',
    };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(
      function (res) {
        if (res.status === 204) {
          return null;
        }
        return res.text().then(function (text) {
          var data = null;
          if (text) {
            try {
              data = JSON.parse(text);
            } catch (e) {
              data = null;
            }
          }
          if (res.ok) {
            return data;
          }
          var err = data && data.error ? data.error : {};
          throw new ApiError(res.status, err.code || 'http_' + res.status, err.message || defaultMessage(res.status));
        });
      },
      function () {
        throw new ApiError(0, 'network', 'Could not reach the key service. Check your connection and try again.');
      }
    );
  }

  function defaultMessage(status) {
    switch (status) {
      case 401: return 'Your session has ended. Please sign in again.';
      case 403: return 'You do not have permission to do that.';
      case 404: return 'That key no longer exists.';
      case 429: return 'Too many attempts. Wait a moment and try again.';
      default: return 'Something went wrong (HTTP ' + status + '). Please try again.';
    }
  }

  function toLogin() {
    window.location.replace('/login');
  }

  // ---- small DOM helpers -------------------------------------------------------------------

  function $(id) {
    return document.getElementById(id);
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined && text !== null) {
      node.textContent = text;
    }
    return node;
  }

  function show(node, yes) {
    node.hidden = !yes;
  }

  function setError(node, message) {
    node.textContent = message || '';
    node.hidden = !message;
  }

  function announce(message) {
    var status = $('status');
    status.textContent = '';
    // A fresh text node so screen readers announce repeats too.
    window.setTimeout(function () { status.textContent = message; }, 50);
  }

  // ---- time --------------------------------------------------------------------------------

  var rtf = typeof Intl !== 'undefined' && Intl.RelativeTimeFormat
    ? new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' })
    : null;

  function parseTime(iso) {
    if (!iso) {
      return null;
    }
    var t = new Date(iso);
    return isNaN(t.getTime()) ? null : t;
  }

  function exactTime(t) {
    return t.toLocaleString(undefined, {
      year: 'numeric', month: 'short', day: 'numeric',
      hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'short',
    });
  }

  function shortDate(t) {
    return t.toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' });
  }

  function relativeTime(t, now) {
    var diff = (t.getTime() - now) / 1000;
    var abs = Math.abs(diff);
    var units = [
      ['year', 365 * 24 * 3600], ['month', 30 * 24 * 3600], ['week', 7 * 24 * 3600],
      ['day', 24 * 3600], ['hour', 3600], ['minute', 60],
    ];
    if (abs < 60) {
      return diff <= 0 ? 'just now' : 'in a moment';
    }
    for (var i = 0; i < units.length; i++) {
      if (abs >= units[i][1]) {
        var n = Math.round(diff / units[i][1]);
        if (rtf) {
          return rtf.format(n, units[i][0]);
        }
        var m = Math.abs(n) + ' ' + units[i][0] + (Math.abs(n) === 1 ? '' : 's');
        return n < 0 ? m + ' ago' : 'in ' + m;
      }
    }
    return exactTime(t);
  }

  function timeNode(t, text) {
    var node = el('time', null, text);
    node.dateTime = t.toISOString();
    node.title = exactTime(t);
    return node;
  }

  // ---- dialogs -----------------------------------------------------------------------------

  // Open a native modal dialog from a button; focus goes to `focusTarget` and, on close, back to
  // the button (or to a fallback when the button is gone, e.g. its row was deleted).
  function openDialog(dialog, opener, focusTarget) {
    dialog.returnFocusTo = opener || document.activeElement;
    if (typeof dialog.showModal === 'function') {
      dialog.showModal();
    } else {
      dialog.setAttribute('open', '');
    }
    if (focusTarget) {
      focusTarget.focus();
    }
  }

  function closeDialog(dialog) {
    if (dialog.open) {
      if (typeof dialog.close === 'function') {
        dialog.close();
      } else {
        dialog.removeAttribute('open');
        dialog.dispatchEvent(new Event('close'));
      }
    }
  }

  function cssEscape(value) {
    return window.CSS && CSS.escape ? CSS.escape(value || '') : String(value || '').replace(/["\\]/g, '\\$&');
  }

  function wireDialog(dialog) {
    dialog.addEventListener('close', function () {
      var target = dialog.returnFocusTo;
      dialog.returnFocusTo = null;
      if (target === false) {
        // Handed over to the next dialog, which returns focus itself.
        return;
      }
      if (target && !document.body.contains(target) && target.getAttribute('data-action')) {
        // The row was drawn again: the same button of the same key, if the key is still listed.
        target = document.querySelector('tr[data-key-id="' + cssEscape(target.getAttribute('data-for-key')) +
          '"] [data-action="' + target.getAttribute('data-action') + '"]');
      }
      if (!target || !document.body.contains(target) || target.hidden) {
        target = $('create-key').hidden ? $('main') : $('create-key');
      }
      target.focus();
    });
    var closers = dialog.querySelectorAll('[data-close]');
    for (var i = 0; i < closers.length; i++) {
      closers[i].addEventListener('click', function () { closeDialog(dialog); });
    }
  }

  // ---- login page --------------------------------------------------------------------------

  function initLogin() {
    var form = $('login-form');
    var email = $('login-email');
    var password = $('login-password');
    var submit = $('login-submit');
    var error = $('login-error');

    // Already signed in: go straight to the keys.
    api('GET', '/v1/me').then(function () {
      window.location.replace('/settings/api-keys');
    }, function () { /* not signed in: stay */ });

    function fieldError(input, message) {
      var node = $(input.id + '-error');
      setError(node, message);
      if (message) {
        input.setAttribute('aria-invalid', 'true');
      } else {
        input.removeAttribute('aria-invalid');
      }
    }

    form.addEventListener('submit', function (event) {
      event.preventDefault();
      setError(error, '');
      var e = email.value.trim();
      var p = password.value;
      fieldError(email, e ? (e.indexOf('@') > 0 ? '' : 'Enter a valid email address.') : 'Enter your email address.');
      fieldError(password, p ? '' : 'Enter your password.');
      if (!e || e.indexOf('@') <= 0) {
        email.focus();
        return;
      }
      if (!p) {
        password.focus();
        return;
      }
      submit.disabled = true;
      submit.textContent = 'Signing in…';
      api('POST', '/v1/session', { email: e, password: p }).then(function () {
        password.value = '';
        window.location.replace('/settings/api-keys');
      }, function (err) {
        submit.disabled = false;
        submit.textContent = 'Sign in';
        if (err.status === 401) {
          setError(error, 'Wrong email or password.');
          password.value = '';
          password.focus();
        } else {
          setError(error, err.message);
        }
      });
    });
  }

  // ---- API keys page -----------------------------------------------------------------------

  function initKeys() {
    var state = {
      keys: [],
      // Expiry of rotated-out keys learnt from rotate answers in this page view, for servers
      // whose listing does not carry it.
      expiries: {},
    };

    [$('create-dialog'), $('new-key-dialog'), $('delete-dialog'), $('rotate-dialog')].forEach(wireDialog);

    $('sign-out').addEventListener('click', function () {
      var button = this;
      button.disabled = true;
      api('DELETE', '/v1/session').then(toLogin, toLogin);
    });

    api('GET', '/v1/me').then(function (me) {
      var who = $('me');
      who.textContent = me.name ? me.name + ' · ' + me.email : me.email;
      show(who, true);
      if (me.role !== 'admin') {
        // A member sees no key data: the keys are not even fetched.
        show($('loading'), false);
        show($('admin-only-message'), true);
        return null;
      }
      show($('create-key'), true);
      return loadKeys();
    }).catch(function (err) {
      if (err.status === 401) {
        toLogin();
        return;
      }
      show($('loading'), false);
      pageError(err.message);
    });

    function pageError(message) {
      setError($('page-error'), message);
    }

    function handleFailure(err, inline) {
      if (err.status === 401) {
        toLogin();
        return;
      }
      if (inline) {
        setError(inline, err.message);
      } else {
        pageError(err.message);
      }
    }

    function loadKeys() {
      return api('GET', '/v1/keys').then(function (data) {
        state.keys = (data && data.keys) || [];
        show($('loading'), false);
        render();
      });
    }

    // ---- the table ----

    function render() {
      var tbody = $('keys').tBodies[0];
      while (tbody.firstChild) {
        tbody.removeChild(tbody.firstChild);
      }
      var now = Date.now();
      state.keys.forEach(function (key) {
        tbody.appendChild(row(key, now));
      });
      show($('keys-section'), true);
      show($('keys').parentNode, state.keys.length > 0);
      show($('keys-empty'), state.keys.length === 0);
    }

    function row(key, now) {
      var tr = el('tr');
      tr.setAttribute('data-key-id', key.id);
      tr.setAttribute('data-testid', 'key-row');

      var created = parseTime(key.created_at);
      var lastUsed = parseTime(key.last_used_at);
      var expiresIso = key.expires_at || state.expiries[key.id] && state.expiries[key.id].at;
      var expires = parseTime(expiresIso);
      // A replaced key on its way out needs no advice to remove or rotate it.
      // A never-used key is a candidate only once it has had a week to be put to use.
      var stale = !expires && (lastUsed
        ? now - lastUsed.getTime() > STALE_DAYS * DAY_MS
        : !!created && now - created.getTime() > UNUSED_GRACE_DAYS * DAY_MS);
      var rotationDue = !expires && created && now - created.getTime() > ROTATE_DAYS * DAY_MS;
      if (stale) {
        tr.classList.add('is-stale');
      }

      // Memo, with the marks.
      var memoCell = el('td', 'cell-memo');
      memoCell.setAttribute('data-label', 'Memo');
      memoCell.appendChild(el('span', 'memo', key.memo));
      var marks = el('span', 'marks');
      if (expires) {
        var exp = el('span', 'badge badge-neutral key-expiry');
        var untilFirstUse = state.expiries[key.id] && state.expiries[key.id].untilFirstUse;
        exp.textContent = untilFirstUse
          ? 'Replaced · expires on first use of the new key, at most ' + relativeTime(expires, now)
          : 'Replaced · expires ' + relativeTime(expires, now);
        exp.title = 'Replaced by rotation; this key stops working ' + exactTime(expires) + '.';
        marks.appendChild(exp);
      }
      if (key.kind === 'legacy') {
        var legacy = el('span', 'badge badge-neutral', 'Legacy');
        legacy.title = 'An older 32-character key issued before the current key format.';
        marks.appendChild(legacy);
      }
      if (stale) {
        var sb = el('span', 'badge badge-warn mark-stale', 'Candidate for removal');
        sb.title = lastUsed ? 'Not used for more than ' + STALE_DAYS + ' days.' : 'Never used in the ' + UNUSED_GRACE_DAYS + '+ days since it was created.';
        marks.appendChild(sb);
      }
      if (rotationDue) {
        var rb = el('span', 'badge badge-info mark-rotate', 'Rotation due');
        rb.title = 'Created more than ' + ROTATE_DAYS + ' days ago. Rotate it to limit the damage of an unnoticed leak.';
        marks.appendChild(rb);
      }
      if (marks.firstChild) {
        memoCell.appendChild(marks);
      }
      tr.appendChild(memoCell);

      // Key: last 4 only.
      var keyCell = el('td', 'cell-key');
      keyCell.setAttribute('data-label', 'Key');
      var code = el('code', 'last4', '…' + key.last4);
      code.title = 'Only the last characters of a key are kept for display.';
      keyCell.appendChild(code);
      tr.appendChild(keyCell);

      // Created: date and who.
      var createdCell = el('td', 'cell-created');
      createdCell.setAttribute('data-label', 'Created');
      if (created) {
        createdCell.appendChild(timeNode(created, shortDate(created)));
      }
      var by = el('span', 'created-by');
      if (key.created_by) {
        by.textContent = 'by ' + (key.created_by.name || key.created_by.email);
        by.title = key.created_by.email;
      } else {
        by.classList.add('created-by-unknown');
        by.title = 'Keys created before this page existed did not record who created them.';
        by.setAttribute('role', 'img');
        by.setAttribute('aria-label', 'Creator not recorded: keys created before this page existed did not record it.');
        by.setAttribute('tabindex', '0');
      }
      createdCell.appendChild(by);
      tr.appendChild(createdCell);

      // Last used.
      var usedCell = el('td', 'cell-used');
      usedCell.setAttribute('data-label', 'Last used');
      if (lastUsed) {
        usedCell.appendChild(timeNode(lastUsed, relativeTime(lastUsed, now)));
      } else {
        usedCell.appendChild(el('span', 'never', 'Never'));
      }
      tr.appendChild(usedCell);

      // Exposures.
      var expCell = el('td', 'cell-exposures');
      expCell.setAttribute('data-label', 'Exposures');
      var exposures = key.exposures || { count: 0, last: null };
      if (exposures.count > 0) {
        var badge = el('span', 'badge badge-danger exposure-badge',
          exposures.count === 1 ? 'Exposed' : 'Exposed ×' + exposures.count);
        expCell.appendChild(badge);
        if (exposures.last) {
          var seen = parseTime(exposures.last.seen_at);
          var detail = el('span', 'exposure-detail');
          detail.appendChild(el('span', 'exposure-where mono', exposures.last.where));
          var meta = el('span', 'exposure-meta muted');
          if (exposures.last.source) {
            meta.appendChild(document.createTextNode(exposures.last.source + (seen ? ', ' : '')));
          }
          if (seen) {
            meta.appendChild(timeNode(seen, relativeTime(seen, now)));
          }
          if (meta.firstChild) {
            detail.appendChild(meta);
          }
          badge.title = 'Reported by the scanner: ' + exposures.last.where +
            (seen ? ' on ' + exactTime(seen) : '') + '. Rotate or delete this key.';
          expCell.appendChild(detail);
        }
      } else {
        expCell.appendChild(el('span', 'muted none', 'None'));
      }
      tr.appendChild(expCell);

      // Actions: Rotate and ×.
      var actCell = el('td', 'cell-actions');
      var rotate = el('button', 'btn btn-secondary btn-small rotate-key', 'Rotate');
      rotate.type = 'button';
      rotate.setAttribute('aria-label', 'Rotate key ' + key.memo);
      rotate.setAttribute('data-action', 'rotate');
      rotate.setAttribute('data-for-key', key.id);
      rotate.addEventListener('click', function () { openRotate(key, rotate); });
      var del = el('button', 'btn btn-icon delete-key');
      del.type = 'button';
      del.setAttribute('aria-label', 'Delete key ' + key.memo);
      del.setAttribute('data-action', 'delete');
      del.setAttribute('data-for-key', key.id);
      del.title = 'Delete key';
      del.appendChild(el('span', null, '×')).setAttribute('aria-hidden', 'true');
      del.addEventListener('click', function () { openDelete(key, del); });
      actCell.appendChild(rotate);
      actCell.appendChild(del);
      tr.appendChild(actCell);
      return tr;
    }

    // ---- create ----

    var createDialog = $('create-dialog');
    var memoInput = $('memo');
    var memoError = $('memo-error');

    $('create-key').addEventListener('click', function () {
      memoInput.value = '';
      memoInput.removeAttribute('aria-invalid');
      setError(memoError, '');
      $('create-submit').disabled = false;
      openDialog(createDialog, this, memoInput);
    });

    function checkMemo(input, errorNode, required) {
      var memo = input.value.trim();
      var message = '';
      if (!memo && required) {
        message = 'Enter a memo, for example the name of the integration that will use the key.';
      } else if (memo.length > MEMO_MAX) {
        message = 'Keep the memo to ' + MEMO_MAX + ' characters or fewer.';
      }
      setError(errorNode, message);
      if (message) {
        input.setAttribute('aria-invalid', 'true');
        input.focus();
        return null;
      }
      input.removeAttribute('aria-invalid');
      return memo;
    }

    $('create-form').addEventListener('submit', function (event) {
      event.preventDefault();
      var memo = checkMemo(memoInput, memoError, true);
      if (memo === null) {
        return;
      }
      var submit = $('create-submit');
      submit.disabled = true;
      api('POST', '/v1/keys', { memo: memo }).then(function (created) {
        var opener = createDialog.returnFocusTo;
        createDialog.returnFocusTo = false;
        closeDialog(createDialog);
        showNewKey(created, opener, null);
        loadKeys().catch(function (err) { handleFailure(err); });
      }, function (err) {
        submit.disabled = false;
        handleFailure(err, memoError);
      });
    });

    // ---- the new key, once ----

    var newKeyDialog = $('new-key-dialog');
    var newKeyValue = $('new-key-value');
    var copyStatus = $('copy-status');

    function showNewKey(created, opener, rotation) {
      $('new-key-title').textContent = rotation ? 'Your replacement API key' : 'Your new API key';
      $('new-key-memo').textContent = created.memo ? 'Memo: ' + created.memo : '';
      newKeyValue.textContent = created.key;
      copyStatus.textContent = '';
      var note = $('rotate-note');
      if (rotation) {
        note.textContent = rotation;
        show(note, true);
      } else {
        note.textContent = '';
        show(note, false);
      }
      openDialog(newKeyDialog, opener || $('create-key'), $('copy-key'));
    }

    function selectKeyText() {
      var range = document.createRange();
      range.selectNodeContents(newKeyValue);
      var sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
    }

    $('copy-key').addEventListener('click', function () {
      var value = newKeyValue.textContent;
      function fallback() {
        selectKeyText();
        var copied = false;
        try {
          copied = document.execCommand && document.execCommand('copy');
        } catch (e) {
          copied = false;
        }
        copyStatus.textContent = copied
          ? 'Copied to the clipboard.'
          : 'The key is selected: press Ctrl+C (or ⌘C) to copy it.';
      }
      if (navigator.clipboard && navigator.clipboard.writeText && window.isSecureContext) {
        navigator.clipboard.writeText(value).then(function () {
          copyStatus.textContent = 'Copied to the clipboard.';
        }, fallback);
      } else {
        fallback();
      }
    });

    newKeyValue.addEventListener('focus', selectKeyText);

    $('close-new-key').addEventListener('click', function () { closeDialog(newKeyDialog); });

    // However the panel closes (button, Escape), the key leaves the page for good.
    newKeyDialog.addEventListener('close', function () {
      newKeyValue.textContent = '';
      copyStatus.textContent = '';
      var sel = window.getSelection && window.getSelection();
      if (sel) {
        sel.removeAllRanges();
      }
    });

    // ---- delete ----

    var deleteDialog = $('delete-dialog');
    var deleting = null;

    function lastUsedText(key) {
      var t = parseTime(key.last_used_at);
      return t ? relativeTime(t, Date.now()) + ' (' + exactTime(t) + ')' : 'never';
    }

    function openDelete(key, opener) {
      deleting = key;
      $('delete-memo').textContent = key.memo;
      $('delete-last4').textContent = '…' + key.last4;
      $('delete-last-used').textContent = lastUsedText(key);
      setError($('delete-error'), '');
      $('confirm-delete').disabled = false;
      openDialog(deleteDialog, opener, $('cancel-delete'));
    }

    $('confirm-delete').addEventListener('click', function () {
      var key = deleting;
      if (!key) {
        return;
      }
      var button = this;
      button.disabled = true;
      api('DELETE', '/v1/keys/' + encodeURIComponent(key.id)).then(function () {
        removeKey(key);
      }, function (err) {
        if (err.status === 404) {
          // Already gone: the row should go too.
          removeKey(key);
          return;
        }
        button.disabled = false;
        handleFailure(err, $('delete-error'));
      });
    });

    function removeKey(key) {
      deleting = null;
      state.keys = state.keys.filter(function (k) { return k.id !== key.id; });
      closeDialog(deleteDialog);
      render();
      announce('Deleted key ' + key.memo + '.');
    }

    // ---- rotate ----

    var rotateDialog = $('rotate-dialog');
    var rotating = null;

    function openRotate(key, opener) {
      rotating = key;
      $('rotate-memo-name').textContent = key.memo;
      $('rotate-last4').textContent = '…' + key.last4;
      $('rotate-memo').value = key.memo;
      setError($('rotate-memo-error'), '');
      setError($('rotate-error'), '');
      $('confirm-rotate').disabled = false;
      var choice = rotateDialog.querySelector('input[name="grace"][value="first-use"]');
      choice.checked = true;
      openDialog(rotateDialog, opener, choice);
    }

    $('rotate-form').addEventListener('submit', function (event) {
      event.preventDefault();
      var key = rotating;
      if (!key) {
        return;
      }
      var memo = checkMemo($('rotate-memo'), $('rotate-memo-error'), false);
      if (memo === null) {
        return;
      }
      var picked = rotateDialog.querySelector('input[name="grace"]:checked');
      var choice = picked ? picked.value : 'first-use';
      var body = {};
      if (memo) {
        body.memo = memo;
      }
      if (choice === 'first-use') {
        body.until_first_use = true;
        body.grace_seconds = FIRST_USE_MAX_SECONDS;
      } else if (choice === 'now') {
        body.grace_seconds = 0;
      } else {
        body.grace_seconds = parseInt(choice, 10);
      }
      var button = $('confirm-rotate');
      button.disabled = true;
      api('POST', '/v1/keys/' + encodeURIComponent(key.id) + '/rotate', body).then(function (created) {
        var opener = rotateDialog.returnFocusTo;
        rotateDialog.returnFocusTo = false;
        rotating = null;
        closeDialog(rotateDialog);
        var oldExpires = parseTime(created.old_expires_at);
        var note;
        if (choice === 'now' || !oldExpires || oldExpires.getTime() <= Date.now()) {
          note = 'The old key (…' + key.last4 + ') has stopped working.';
        } else {
          state.expiries[created.replaces || key.id] = { at: created.old_expires_at, untilFirstUse: choice === 'first-use' };
          note = choice === 'first-use'
            ? 'The old key (…' + key.last4 + ') keeps working until this key is first used, and at the latest until ' + exactTime(oldExpires) + '.'
            : 'The old key (…' + key.last4 + ') keeps working until ' + exactTime(oldExpires) + '.';
        }
        showNewKey(created, opener, note);
        loadKeys().catch(function (err) { handleFailure(err); });
      }, function (err) {
        button.disabled = false;
        handleFailure(err, $('rotate-error'));
      });
    });
  }

  // ---- start -------------------------------------------------------------------------------

  function start() {
    var page = document.body.getAttribute('data-page');
    if (page === 'login') {
      initLogin();
    } else if (page === 'api-keys') {
      initKeys();
    }
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
