// The site's one script. The sign-up form calls the checkout API and follows its answer; the
// welcome page follows the order until the CTF is live. Every page also works without it.
// The build replaces TEXT with the tables of api/web/buyer-text.ts, the single source of
// the words used here and by the server.
'use strict'
;(function () {
  var TEXT = /* BUYER_TEXT */ null

  function byId (id) { return document.getElementById(id) }

  function show (el, text) {
    if (!el) return
    if (text !== undefined) el.textContent = text
    el.hidden = false
  }

  function fill (template, values) {
    return template.replace(/\{(\w+)\}/g, function (_m, k) { return values[k] || '' }).trim()
  }

  // --- sign-up form -------------------------------------------------------------------

  // Mirrors registerError() in api/web/buyer-text.ts.
  function registerError (code, field) {
    if (code === 'invalid_request' && (field === 'name' || field === 'email' || field === 'plan')) {
      return TEXT.registerErrors['invalid_' + field]
    }
    return TEXT.registerErrors[code] || TEXT.registerErrors.internal_error
  }

  function clearErrors (form) {
    var alert = byId('form-alert')
    alert.hidden = true
    alert.textContent = ''
    var errors = form.querySelectorAll('.field-error')
    for (var i = 0; i < errors.length; i++) { errors[i].hidden = true; errors[i].textContent = '' }
    var invalid = form.querySelectorAll('[aria-invalid]')
    for (var j = 0; j < invalid.length; j++) invalid[j].removeAttribute('aria-invalid')
    var plans = form.querySelectorAll('input[name="plan"][aria-describedby]')
    for (var k = 0; k < plans.length; k++) plans[k].removeAttribute('aria-describedby')
  }

  function showError (form, code, field) {
    var e = registerError(code, field)
    if (e.field === 'form') {
      show(byId('form-alert'), e.message)
      byId('form-alert').focus()
      return
    }
    show(byId(e.field + '-error'), e.message)
    var control = e.field === 'plan' ? form.querySelector('input[name="plan"]:checked') || form.querySelector('input[name="plan"]') : byId(e.field)
    var holder = e.field === 'plan' ? control.closest('fieldset') : control
    holder.setAttribute('aria-invalid', 'true')
    // The fieldset's description is not read with the radio that takes the focus: each radio
    // carries the message too.
    if (e.field === 'plan') {
      var radios = form.querySelectorAll('input[name="plan"]')
      for (var i = 0; i < radios.length; i++) radios[i].setAttribute('aria-describedby', 'plan-error')
    }
    control.focus()
  }

  function initRegister (form) {
    var submit = byId('register-submit')
    var status = byId('register-status')
    // Busy is aria-disabled, not disabled: a disabled button would drop the keyboard focus. The
    // button keeps its name; the progress is said in a status region, which is announced.
    var busy = false
    var done = function () {
      busy = false
      submit.removeAttribute('aria-disabled')
      status.textContent = ''
    }
    byId('form-alert').tabIndex = -1
    // Back from Stripe Checkout, the browser may show this page as it was left (the
    // back-forward cache): waiting for a checkout that has already opened.
    window.addEventListener('pageshow', function (event) {
      if (event.persisted) done()
    })
    form.addEventListener('submit', function (event) {
      event.preventDefault()
      // One checkout at a time: an aria-disabled button (or Enter in a field) still submits.
      if (busy) return
      clearErrors(form)
      var body = {}
      new FormData(form).forEach(function (value, key) {
        var v = String(value).trim()
        if (v !== '') body[key] = v
      })
      busy = true
      submit.setAttribute('aria-disabled', 'true')
      status.textContent = 'Starting your checkout…'
      fetch(form.getAttribute('action'), {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify(body)
      }).then(function (res) {
        return res.json().catch(function () { return {} }).then(function (answer) {
          var next = res.ok && (answer.checkout_url || answer.welcome_url)
          if (next) {
            window.location.assign(next)
            return
          }
          showError(form, answer.error || 'internal_error', answer.field)
          done()
        })
      }, function () {
        showError(form, 'network')
        done()
      })
    })
  }

  // --- welcome page -------------------------------------------------------------------

  // Mirrors progressOf() in api/web/buyer-text.ts, except that a slow payment is counted from
  // the page's load (`delayed`): the browser's clock may be off from the server's.
  function progressOf (s, delayed) {
    if (!s) return { key: 'not_found', done: 0, final: true }
    var paid = s.paid_at !== null || s.billing === 'paid'
    var ready = s.ready_at !== null
    var online = paid && ready && s.infra === 'ready'
    var done = 1 + (paid ? 1 : 0) + (paid && ready ? 1 : 0) + (paid && ready && s.state === 'active' ? 1 : 0)
    switch (s.state) {
      case 'active': return { key: 'live', done: 4, final: true, online: true }
      case 'failed': return { key: 'failed', done: done, final: false }
      case 'canceled':
        if (online) return { key: 'canceled_running', done: 4, final: false, online: true, canceledAt: s.canceled_at || undefined }
        return { key: paid ? 'canceled' : 'canceled_unpaid', done: Math.min(done, 2), final: !(paid && (s.infra === 'provisioning' || s.infra === 'ready')) }
      case 'past_due':
        if (online) return { key: 'past_due', done: 4, final: false, online: true }
        return paid ? { key: 'past_due_setting_up', done: 2, final: false } : { key: 'payment_failed', done: 1, final: false }
      default: return { key: paid ? 'setting_up' : delayed ? 'payment_delayed' : 'awaiting_payment', done: done, final: false }
    }
  }

  var MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December']

  // Mirrors shutdownText() in api/web/buyer-text.ts.
  function shutdownText (canceledAt, graceHours, grace) {
    var at = canceledAt === undefined || graceHours === undefined ? NaN : Date.parse(canceledAt) + graceHours * 3600000
    if (isNaN(at)) return grace
    var d = new Date(at)
    var two = function (n) { return (n < 10 ? '0' : '') + n }
    return d.getUTCDate() + ' ' + MONTHS[d.getUTCMonth()] + ' ' + d.getUTCFullYear() + ', ' + two(d.getUTCHours()) + ':' + two(d.getUTCMinutes()) + ' UTC'
  }

  var STEP_STATE = { done: 'done', current: 'in progress', stopped: 'stopped', todo: 'not started yet' }

  // Mirrors stepClass() in api/web/slots.ts.
  function stepClass (i, p) {
    if (i < p.done) return 'done'
    if (i === p.done && (p.key === 'failed' || p.key === 'canceled' || p.key === 'canceled_unpaid')) return 'stopped'
    if (i === p.done && !p.final) return 'current'
    return 'todo'
  }

  function render (root, status, tenant, delayed) {
    var p = progressOf(status, delayed)
    var settings = TEXT.settings
    var values = status
      ? { url: status.url, fqdn: status.fqdn, tenant: status.tenant_id, reason: status.error || 'The subscription was canceled.', grace: settings.grace, billing: settings.billing, until: shutdownText(p.canceledAt, settings.graceHours, settings.grace) }
      : { tenant: tenant }
    var text = TEXT.progress[p.key]
    // The page's heading, and the title that begins with it, follow the order (welcomeHeading()).
    var heading = byId('welcome-heading')
    if (heading && heading.textContent !== text.heading) {
      document.title = document.title.replace(heading.textContent, text.heading)
      heading.textContent = text.heading
    }
    var headline = byId('progress-headline')
    var detail = fill(text.detail, values)
    // Only touch the live region when something changed, so screen readers are not repeated to.
    if (root.getAttribute('data-key') !== p.key || byId('progress-detail').textContent !== detail) {
      headline.textContent = fill(text.headline, values)
      byId('progress-detail').textContent = detail
    }
    root.setAttribute('data-key', p.key)
    root.setAttribute('data-final', String(p.final))
    var steps = byId('progress-steps').children
    for (var i = 0; i < steps.length; i++) {
      var cls = stepClass(i, p)
      steps[i].className = 'step ' + cls
      // The label (a text node) says where the order stopped, as slots.ts renders it.
      steps[i].firstChild.textContent = cls === 'stopped' ? TEXT.stoppedSteps[i] : TEXT.steps[i]
      steps[i].lastChild.textContent = ' (' + STEP_STATE[cls] + ')'
    }
    // To the server whenever one runs: a past-due or canceled CTF's still answers.
    var live = byId('live-link')
    if (p.online) {
      live.firstChild.href = status.url
      live.hidden = false
    } else {
      live.hidden = true
    }
    // The order number support asks for: shown for every order we know, as the server does.
    byId('order-id').textContent = status ? status.tenant_id : ''
    byId('order-ref').hidden = !status
    return p
  }

  function initAdminDetails (tenant, token) {
    var section = byId('admin-details')
    // Only for a link that can be the signed one, as the server offers it (its token checked).
    if (!section || !/^[0-9a-f]{40}$/.test(token)) return
    section.hidden = false
    var button = byId('admin-show')
    var list = byId('admin-credentials')
    var message = byId('admin-message')
    // The server renders the button hidden (it needs this script); none once the details show.
    if (!list.hidden) return
    button.hidden = false
    // Busy is aria-disabled, not disabled: a disabled button would drop the keyboard focus.
    var busy = function (on) {
      if (on) button.setAttribute('aria-disabled', 'true')
      else button.removeAttribute('aria-disabled')
    }
    button.addEventListener('click', function () {
      if (button.getAttribute('aria-disabled') === 'true') return
      busy(true)
      fetch('/tenants/' + tenant + '/credentials?token=' + encodeURIComponent(token), { headers: { accept: 'application/json' }, cache: 'no-store' })
        .then(function (res) {
          return res.json().catch(function () { return {} }).then(function (c) {
            if (!res.ok) {
              // A refused link: the API's words name a schema or a tenant; say it the buyer's way.
              var refused = res.status === 400 || res.status === 403
              // The message is a live region; the focus stays on the button, to ask again.
              show(message, refused ? section.getAttribute('data-refused') : c.message || 'The details are not available yet; try again in a minute.')
              busy(false)
              return
            }
            byId('admin-login').href = c.login_url
            byId('admin-login').textContent = c.login_url
            byId('admin-name').textContent = c.admin_name
            byId('admin-email').textContent = c.admin_email
            byId('admin-password').textContent = c.password
            message.hidden = true
            show(list)
            busy(false)
            button.hidden = true
            // The button goes away: the focus goes to what it showed (the list has tabindex=-1).
            list.focus()
          })
        }, function () {
          show(message, TEXT.registerErrors.network.message)
          busy(false)
        })
    })
  }

  // Polling: every 2 s while a step may finish any moment, then less and less often (a bank
  // payment can take days, a past-due or canceled order as long); never while the tab is hidden.
  // Stopped only when nothing more can come (progressOf's `final`).
  var POLL_FAST_MS = 2000
  var POLL_FAST_FOR_MS = 60000
  var POLL_GROWTH = 1.5
  // Setup ends within minutes and the buyer is watching; the other waits are long.
  var POLL_MAX_MS = { setting_up: 30000 }
  var POLL_SLOW_MAX_MS = 60000
  // Where nothing moves unless someone acts (an operator's retry, a server finishing after a
  // cancellation): once a minute from the start.
  var POLL_SLOW_FROM_START = { failed: true, canceled: true }
  var RETRY_MS = 4000
  var RETRY_MAX_MS = 60000
  var RETRY_AFTER_MAX_MS = 600000
  // PAYMENT_DELAYED_MS in api/web/buyer-text.ts.
  var PAYMENT_DELAYED_MS = 180000

  // Retry-After in seconds or as an HTTP date; undefined when absent or unreadable.
  function retryAfterMs (res) {
    var value = res.headers.get('retry-after')
    if (!value) return undefined
    var ms = /^\d+$/.test(value.trim()) ? Number(value) * 1000 : Date.parse(value) - Date.now()
    return isNaN(ms) ? undefined : Math.min(Math.max(ms, 1000), RETRY_AFTER_MAX_MS)
  }

  function initWelcome (root) {
    var params = new URLSearchParams(window.location.search)
    // An id copied in upper case is the same id, as the server takes it.
    var tenant = (params.get('tenant') || '').toLowerCase()
    var token = params.get('token') || ''
    if (!/^[0-9a-f]{32}$/.test(tenant)) {
      render(root, null, tenant)
      return
    }
    // The server offered the section (the CTF runs, the link is signed): ready at once, not
    // after the first status answer, which a slow or failing request would hold up.
    var offered = byId('admin-details')
    var adminShown = !!offered && !offered.hidden
    if (adminShown) initAdminDetails(tenant, token)
    var loaded = Date.now()
    // The server already found the payment slow (it counts from the order's creation).
    var delayedAtLoad = root.getAttribute('data-key') === 'payment_delayed'
    var phase = null
    var phaseSince = loaded
    var delay = POLL_FAST_MS
    var failures = 0
    var timer = null
    var polling = false
    var stopped = false
    // Not before this moment, whatever the tab does (a Retry-After, or the backoff).
    var nextAt = loaded

    function schedule (ms) {
      nextAt = Date.now() + ms
      if (!document.hidden) timer = window.setTimeout(poll, ms)
    }

    function nextDelay (p) {
      // Waiting for a slow payment is the same wait as for a fresh one: no fast start again.
      var now = Date.now()
      var current = p.key === 'payment_delayed' ? 'awaiting_payment' : p.key
      if (current !== phase) {
        phase = current
        phaseSince = now
        delay = POLL_SLOW_FROM_START[phase] ? POLL_SLOW_MAX_MS : POLL_FAST_MS
      } else if (now - phaseSince >= POLL_FAST_FOR_MS) {
        delay = Math.min(Math.round(delay * POLL_GROWTH), POLL_MAX_MS[phase] || POLL_SLOW_MAX_MS)
      }
      return delay
    }

    function poll () {
      timer = null
      polling = true
      fetch('/tenants/' + tenant + '/status', { headers: { accept: 'application/json' }, cache: 'no-store' })
        .then(function (res) {
          if (res.status === 404) return null
          if (!res.ok) {
            var err = new Error('status ' + res.status)
            err.retryAfter = retryAfterMs(res)
            throw err
          }
          return res.json()
        })
        .then(function (status) {
          polling = false
          failures = 0
          var p = render(root, status, tenant, delayedAtLoad || Date.now() - loaded >= PAYMENT_DELAYED_MS)
          if (p.online && !adminShown) {
            adminShown = true
            initAdminDetails(tenant, token)
          }
          if (p.final) stopped = true
          else schedule(nextDelay(p))
        }, function (err) {
          polling = false
          failures++
          // Written once, as render() does: the live region would repeat it on every failed poll.
          var detail = byId('progress-detail')
          if (detail.textContent !== TEXT.reconnecting) detail.textContent = TEXT.reconnecting
          schedule(err && err.retryAfter !== undefined ? err.retryAfter : Math.min(RETRY_MS * Math.pow(2, failures - 1), RETRY_MAX_MS))
        })
    }

    // A hidden tab does not poll; shown again, it looks at once (or when a wait asked for ends).
    document.addEventListener('visibilitychange', function () {
      if (stopped || polling) return
      window.clearTimeout(timer)
      timer = null
      if (!document.hidden) {
        var wait = nextAt - Date.now()
        if (wait > 0 && failures > 0) timer = window.setTimeout(poll, wait)
        else poll()
      }
    })
    poll()
  }

  var register = byId('register-form')
  if (register) initRegister(register)
  var progress = byId('progress')
  if (progress) initWelcome(progress)
})()
