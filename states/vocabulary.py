"""The words of the domain: states, kinds, channels, roles and documents.

Each enum's *value* is what is stored and what the HTTP API speaks; names are for code.
"""

from __future__ import annotations

from enum import StrEnum


class FilingState(StrEnum):
    """Statuses of a filing (L2). The person sees 审核中 / 备案成功 / 失败 / cancelled / expired."""

    DRAFT = "draft"
    SUBMITTED = "submitted"  # 审核中, under review by the agency (L1)
    DEEMED = "deemed"  # 视同已备案: an emergency admission stands in for a filing (E1)
    EFFECTIVE = "effective"  # 备案成功 (L2)
    REJECTED = "rejected"  # 失败 (L2)
    CANCELLED = "cancelled"  # 取消/撤销 (L4) or replaced by a change (L5)
    EXPIRED = "expired"  # validity ended (V1, V3)
    LAPSED = "lapsed"  # insurance stopped, 停保 (L2)
    WITHDRAWN = "withdrawn"  # the applicant withdrew a draft or a filing under review (L1)


FINAL_STATES = frozenset(
    {
        FilingState.REJECTED,
        FilingState.CANCELLED,
        FilingState.EXPIRED,
        FilingState.LAPSED,
        FilingState.WITHDRAWN,
    }
)


class Category(StrEnum):
    """The two categories of filing (§1)."""

    LONG_TERM = "long_term"  # 跨省异地长期居住
    TEMPORARY = "temporary"  # 跨省临时外出就医


class Kind(StrEnum):
    """Filing kinds K1–K6 (§1); the value is the rule id."""

    RESETTLED_RETIREE = "K1"  # 异地安置退休人员
    LONG_TERM_RESIDENT = "K2"  # 异地长期居住人员
    POSTED_WORKER = "K3"  # 常驻异地工作人员
    REFERRAL = "K4"  # 异地转诊就医人员
    EMERGENCY = "K5"  # 异地急诊抢救人员
    OTHER_TEMPORARY = "K6"  # 其他临时外出就医人员

    @property
    def category(self) -> Category:
        if self in (Kind.RESETTLED_RETIREE, Kind.LONG_TERM_RESIDENT, Kind.POSTED_WORKER):
            return Category.LONG_TERM
        return Category.TEMPORARY


class InsuranceType(StrEnum):
    """险种 (L6)."""

    EMPLOYEE = "employee"  # 职工
    RESIDENT = "resident"  # 居民


class Channel(StrEnum):
    """Where a filing or transition came from (L7)."""

    WECHAT_OFFICIAL_ACCOUNT = "wechat_official_account"
    MINI_PROGRAM = "mini_program"
    NATIONAL_APP = "national_app"
    PROVINCIAL_APP = "provincial_app"  # e.g. 闽政通
    ALIPAY = "alipay"
    WEB_HALL = "web_hall"
    KIOSK = "kiosk"
    COUNTER = "counter"
    PHONE = "phone"
    HOSPITAL_SYSTEM = "hospital_system"
    SYSTEM = "system"  # the engine itself: scheduled expiry, migrations


ONLINE_CHANNELS = frozenset(
    {
        Channel.WECHAT_OFFICIAL_ACCOUNT,
        Channel.MINI_PROGRAM,
        Channel.NATIONAL_APP,
        Channel.PROVINCIAL_APP,
        Channel.ALIPAY,
        Channel.WEB_HALL,
    }
)


class Role(StrEnum):
    """Who acts. The HTTP layer maps credentials to these."""

    INSURED = "insured"  # the person, or a linked family account acting for them (L8)
    HOSPITAL = "hospital"
    OFFICER = "officer"  # agency officer (经办机构)
    AUDITOR = "auditor"
    ADMINISTRATOR = "administrator"
    SYSTEM = "system"


class Document(StrEnum):
    """Documents a filing may carry (M1–M8)."""

    IDENTITY = "identity"  # 医保电子凭证 / ID card / social security card (M1)
    DECLARATION_FORM = "declaration_form"  # 异地就医登记备案表 (M1)
    HOUSEHOLD_REGISTER = "household_register"  # 户口簿首页 + 常住人口登记卡 (M2)
    RESIDENCE_PROOF = "residence_proof"  # 居住证明: property certificate, lease... (M2, M3)
    RESIDENCE_PERMIT = "residence_permit"  # 居住证 (M3, M8)
    POSTING_CERTIFICATE = "posting_certificate"  # 派出证明 (M4)
    LOCAL_EMPLOYER_CERTIFICATE = "local_employer_certificate"  # 异地工作单位证明 (M4)
    LABOUR_CONTRACT = "labour_contract"  # 工作合同 (M4)
    REFERRAL_CERTIFICATE = "referral_certificate"  # 转诊转院证明 (M5)
    EMERGENCY_DIAGNOSIS = "emergency_diagnosis"  # 急病/抢救诊断证明书 (Jiangmen, M6)
    SCHOOL_FILING_FORM = "school_filing_form"  # 学校盖章的备案登记表 (M7)
    STUDENT_CARD = "student_card"  # 学生证 (M7)
    BUSINESS_LICENCE = "business_licence"  # 营业执照 (M8)
    PROPERTY_CERTIFICATE = "property_certificate"  # 房产证 (M8)
    PERSONAL_COMMITMENT = "personal_commitment"  # 个人承诺书, in place of documents (V6, P5)
    CONTINUED_STAY_CERTIFICATE = "continued_stay_certificate"  # 需继续住院治疗相关资料 (E6)
    # Manual reimbursement (P5, seed 003)
    RECEIPTS = "receipts"  # 原始收费票据
    ITEMISED_LIST = "itemised_list"  # 费用明细清单
    MEDICAL_RECORD = "medical_record"  # 病历资料: 出院小结 or 诊断证明
    ACCIDENT_PROOF = "accident_proof"  # 交通事故认定书, 法院判决书, 调解协议书...
    OUTSIDE_DRUG_RECEIPTS = "outside_drug_receipts"  # 外购发票 + 医嘱单/处方 + 购药清单
    BANK_ACCOUNT = "bank_account"  # 本人银行账户信息
    PROXY_AUTHORISATION = "proxy_authorisation"  # 委托人身份证 + 委托授权书


class Institution(StrEnum):
    """Where care or drugs were had (P1, P3)."""

    HOSPITAL = "hospital"  # 定点医疗机构
    PHARMACY = "pharmacy"  # 定点零售药店


class Settlement(StrEnum):
    """How an admission's bill was settled at discharge (P1, P5)."""

    DIRECT = "direct"  # 直接结算: the person paid only their own share
    SELF_PAID = "self_paid"  # 全额垫付: paid in full, to claim manual reimbursement


class Outcome(StrEnum):
    """What became of an attempted transition, as the audit trail records it."""

    APPLIED = "applied"
    DENIED = "denied"
