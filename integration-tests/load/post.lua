-- wrk script: POST the body in $BODY with the API key in $API_KEY.
wrk.method = "POST"
wrk.body = os.getenv("BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["apiKey"] = os.getenv("API_KEY")
