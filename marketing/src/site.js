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
    control.focus()
  }

  function initRegister (form) {
    var submit = byId('register-submit')
    var label = submit.textContent
    byId('form-alert').tabIndex = -1
    form.addEventListener('submit', function (event) {
      event.preventDefault()
      clearErrors(form)
      var body = {}
      new FormData(form).forEach(function (value, key) {
        var v = String(value).trim()
        if (v !== '') body[key] = v
      })
      submit.disabled = true
      submit.textContent = 'Starting your checkout…'
      var done = function () { submit.disabled = false; submit.textContent = label }
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

  // Mirrors progressOf() in api/web/buyer-text.ts.
  function progressOf (s) {
    if (!s) return { key: 'not_found', done: 0, final: true }
    var paid = s.paid_at !== null || (s.billing !== 'pending' && s.billing !== 'canceled')
    var ready = s.ready_at !== null
    var done = 1 + (paid ? 1 : 0) + (paid && ready ? 1 : 0) + (paid && ready && (s.state === 'active' || s.state === 'past_due') ? 1 : 0)
    switch (s.state) {
      case 'active': return { key: 'live', done: 4, final: true }
      case 'failed': return { key: 'failed', done: done, final: true }
      case 'canceled': return { key: 'canceled', done: Math.min(done, 2), final: true }
      case 'past_due': return { key: 'past_due', done: done, final: false }
      default: return { key: paid ? 'setting_up' : 'awaiting_payment', done: done, final: false }
    }
  }

  var STEP_STATE = { done: 'done', current: 'in progress', stopped: 'stopped', todo: 'not started yet' }

  function stepClass (i, p) {
    if (i < p.done) return 'done'
    if (i === p.done && !p.final) return 'current'
    if (i === p.done && (p.key === 'failed' || p.key === 'canceled')) return 'stopped'
    return 'todo'
  }

  function render (root, status, tenant) {
    var p = progressOf(status)
    var values = status
      ? { url: status.url, fqdn: status.fqdn, tenant: status.tenant_id, reason: status.error || 'The subscription was canceled.', grace: TEXT.settings.grace, billing: TEXT.settings.billing }
      : { tenant: tenant }
    var text = TEXT.progress[p.key]
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
      steps[i].lastChild.textContent = ' (' + STEP_STATE[cls] + ')'
    }
    var live = byId('live-link')
    if (p.key === 'live') {
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
    if (!section || !token) return
    section.hidden = false
    var button = byId('admin-show')
    button.addEventListener('click', function () {
      button.disabled = true
      fetch('/tenants/' + tenant + '/credentials?token=' + encodeURIComponent(token), { headers: { accept: 'application/json' }, cache: 'no-store' })
        .then(function (res) {
          return res.json().catch(function () { return {} }).then(function (c) {
            if (!res.ok) {
              show(byId('admin-message'), c.message || 'The details are not available yet; try again in a minute.')
              button.disabled = false
              return
            }
            byId('admin-login').href = c.login_url
            byId('admin-login').textContent = c.login_url
            byId('admin-name').textContent = c.admin_name
            byId('admin-email').textContent = c.admin_email
            byId('admin-password').textContent = c.password
            byId('admin-message').hidden = true
            show(byId('admin-credentials'))
            button.hidden = true
          })
        }, function () {
          show(byId('admin-message'), TEXT.registerErrors.network.message)
          button.disabled = false
        })
    })
  }

  function initWelcome (root) {
    var params = new URLSearchParams(window.location.search)
    var tenant = params.get('tenant') || ''
    var token = params.get('token') || ''
    if (!/^[0-9a-f]{32}$/.test(tenant)) {
      render(root, null, tenant)
      return
    }
    var adminShown = false
    function poll () {
      fetch('/tenants/' + tenant + '/status', { headers: { accept: 'application/json' }, cache: 'no-store' })
        .then(function (res) {
          if (res.status === 404) return null
          if (!res.ok) throw new Error('status ' + res.status)
          return res.json()
        })
        .then(function (status) {
          var p = render(root, status, tenant)
          if (p.key === 'live' && !adminShown) {
            adminShown = true
            initAdminDetails(tenant, token)
          }
          if (!p.final) window.setTimeout(poll, 2000)
        }, function () {
          byId('progress-detail').textContent = TEXT.reconnecting
          window.setTimeout(poll, 4000)
        })
    }
    poll()
  }

  var register = byId('register-form')
  if (register) initRegister(register)
  var progress = byId('progress')
  if (progress) initWelcome(progress)
})()
