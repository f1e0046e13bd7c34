"""Events out: signed webhooks, Infobip-style reports for notify/tracking URLs, ARF complaints.

The dispatcher turns the store's event log into durable deliveries, the sender POSTs them with
retries; both run in a thread of their own so that a slow receiver never touches mail delivery.
"""
