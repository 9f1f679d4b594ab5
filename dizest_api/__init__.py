"""dizest's HTTP service: `dizest_api.app.create_app(settings)` builds the Flask app (JSON API
under /api/v1, the web console at /).

    app = create_app(ApiSettings.from_env())
    app.extensions["dizest"].bootstrap()   # first admin, once, at start-up (prints nothing)

Nothing connects at import or in `create_app`: Redis is reached on the first request. This
package's own import loads nothing: the CLI's remote commands import its client, and `dizest
worker` its settings' names, without Flask or the routes (0.5 s of imports).
"""
