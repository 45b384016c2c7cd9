"""Acting on IMS Ut settings: what a subscriber's simservs document decides for a call.

::

    from xcap_wsgi.ut import Call, decide

    decide(document, Call("cdiv", condition="no-answer")).as_dict()
    # {'action': 'forward', 'target': 'sip:voicemail@ims.example.com', 'rule': 'cfnr',
    #  'notify_caller': True, 'no_reply_timer': 25}

:mod:`.decision` is the pure evaluation (TS 24.604 diversion, TS 24.611 barring);
:mod:`.endpoint` answers it over HTTP to trusted SIP servers (``ut_decision_path``).
"""

from __future__ import annotations

from xcap_wsgi.ut.decision import CDIV_CONDITIONS, DEFAULT_NO_REPLY_TIMER, SERVICES, Call, Decision, decide

__all__ = ["CDIV_CONDITIONS", "DEFAULT_NO_REPLY_TIMER", "SERVICES", "Call", "Decision", "decide"]
