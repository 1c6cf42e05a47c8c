"""ewssim: an Exchange Web Services stand-in for the ewsgw test suite.

Modules by concern:
  http      hand-written asyncio HTTP/1.1 server (keep-alive, chunked, per-connection state)
  ntlm      NTLM server side (negotiate/challenge/authenticate, NTLMv2 + v1, pure MD4)
  soap      safe XML parsing, response building and serialisation (prefix styles)
  schema    request validation against the vendored EWS schema (lxml)
  directory accounts, mailboxes (explicit JSON or generated), lazy calendars
  calendar  calendar items, recurrence expansion, free/busy merging
  throttle  budgets, concurrency, back-off tracking, violations
  faults    fault injection state
  notify    subscriptions, events, streaming connections, push delivery
  ews       EWS operations
  autodiscover  SOAP Autodiscover (GetUserSettings)
  control   JSON control API
  stats     counters shown by GET /stats
  app       glue: the simulator object and the CLI
"""
