"""The rules catalogue: every rule id this service cites, with its title, the regions whose
sources set it, and where it comes from (the source document and, where it has one, the passage
in its own words). Code, config.toml, audit records, errors and the README cite only these ids
(tests check it); `filing policies rules` prints the catalogue and `--markdown` writes RULES.md.

The regions are those whose sources state the rule: `national` is the national default (the
national platform and reimbursement guides, 医保发〔2022〕22号, the Civil Code), the others are
GB/T 2260 codes of the regions config.toml gives a policy. A rule of the service's own design
(the access rules A1–A5, the recording rules R1…) is set by no region.
"""

from __future__ import annotations

import textwrap
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

NATIONAL = "national"


@dataclass(frozen=True)
class Document:
    """A source the rules come from."""

    key: str  # short key, used in the terminal table
    name: str
    about: str


@dataclass(frozen=True)
class Source:
    document: Document
    where: str = ""  # the article, or the guide's section (its own heading)
    passage: str = ""  # quoted in the source's own words where it has one


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    regions: tuple[str, ...]  # whose sources set it (NATIONAL or region codes), in that order
    sources: tuple[Source, ...]

    @property
    def section(self) -> str:
        return SECTIONS[self.id[0]]


XIAMEN = Document(
    "000",
    "Xiamen guide (seed 000)",
    "厦门社保异地就医备案 — who files, channels, validity, documents, emergencies, late filing",
)
JIANGMEN = Document(
    "001",
    "Jiangmen guide (seed 001)",
    "医保异地就医备案指南 (江门) — referral, long-term and emergency filings, channels, windows",
)
PLATFORM = Document(
    "002",
    "National service platform guide (seed 002)",
    "异地就医app备案手续 (国家医保服务平台) — who files, steps, validity, documents, cancel",
)
REIMBURSEMENT = Document(
    "003",
    "Reimbursement guide (seed 003)",
    "社保卡异地报销流程 — direct settlement, manual reimbursement, deadlines, regional ratios",
)
N22 = Document(
    "N22",
    "医保发〔2022〕22号",
    "the national notice on cross-province direct settlement, as restated by provincial bureaus",
)
CIVIL_CODE = Document("CC", "民法典 arts. 200–204", "中华人民共和国民法典 第十章 期间计算")
SERVICE = Document(
    "service",
    "Service design",
    "this service's own choices where no source decides (safe defaults, access control)",
)
DOCUMENTS: tuple[Document, ...] = (
    XIAMEN,
    JIANGMEN,
    PLATFORM,
    REIMBURSEMENT,
    N22,
    CIVIL_CODE,
    SERVICE,
)

REGION_NAMES: dict[str, str] = {
    NATIONAL: "national default",
    "350200": "Xiamen 厦门",
    "440700": "Jiangmen 江门",
    "440300": "Shenzhen 深圳",
    "310000": "Shanghai 上海",
}

SECTIONS: dict[str, str] = {
    "K": "§1 Who files, and which kind (备案类型)",
    "L": "§2 Lifecycle and statuses",
    "V": "§3 Validity and the cancel lock (备案有效期)",
    "M": "§4 Documents (备案材料)",
    "E": "§5 Emergencies, late filing and hospital-side paths",
    "P": "§6 Paying and being reimbursed",
    "C": "§7 How a period is counted (民法典 arts. 200–204)",
    "A": "§8 Access to the service",
    "R": "§9 Recording commands",
}

_X, _J, _N = "350200", "440700", NATIONAL


def _rule(rule_id: str, title: str, regions: Iterable[str], *sources: Source) -> Rule:
    return Rule(rule_id, title, tuple(regions), sources)


_RULES: tuple[Rule, ...] = (
    # §1 ---------------------------------------------------------------------------------------
    _rule(
        "K1",
        "Resettled retiree (异地安置退休人员): a long-term filing (跨省异地长期居住)",
        (_N, _X, _J),
        Source(XIAMEN, "跨省异地就医备案的条件", "跨省异地长期居住人员:包括异地安置退休人员、"
               "异地长期居住人员、常驻异地工作人员等"),
        Source(JIANGMEN, "第二类情形", "异地安置退休人员"),
        Source(PLATFORM, "适用人群", "包括异地安置退休人员、异地长期居住人员、常驻异地工作人员等"),
        Source(REIMBURSEMENT, "备案条件和方式", "跨省异地长期居住人员(如异地安置退休人员"),
        Source(N22),
    ),
    _rule(
        "K2",
        "Long-term resident (异地长期居住人员): in the same place for six months or more",
        (_N, _X, _J),
        Source(XIAMEN, "跨省异地就医备案的条件", "异地长期居住人员"),
        Source(JIANGMEN, "第二类情形", "在市外长期居住(同一地连续居住达6个月以上)的参保人"),
        Source(PLATFORM, "适用人群", "异地长期居住人员"),
    ),
    _rule(
        "K3",
        "Posted worker (常驻异地工作人员): posted half a year or more (students exempt from the "
        "minimum), and which insurance types may file",
        (_N, _X, _J),
        Source(XIAMEN, "跨省异地就医备案的条件", "常驻异地工作人员"),
        Source(JIANGMEN, "第二类情形", "参保用人单位派驻市外(不含赴港、澳、台地区及出国)"
               "异地机构连续工作半年以上的职工身份参保人(含在校学生寒暑假或因病休学期间,"
               "回到户籍所在地,以及在异地分校学习、实习期间,且不受半年以上的时间限制)"),
        Source(PLATFORM, "适用人群", "常驻异地工作人员"),
    ),
    _rule(
        "K4",
        "Referral (异地转诊就医人员): a temporary filing (跨省临时外出就医)",
        (_N, _X, _J),
        Source(XIAMEN, "跨省异地就医备案的条件", "跨省临时外出就医人员:包括异地转诊就医人员"),
        Source(JIANGMEN, "第一类情形", "市外转院申请"),
        Source(PLATFORM, "适用人群", "包括异地转诊就医人员"),
    ),
    _rule(
        "K5",
        "Emergency (异地急诊抢救人员): a temporary filing, while away for work or travel",
        (_N, _X, _J),
        Source(XIAMEN, "跨省异地就医备案的条件", "因工作、旅游等原因异地急诊抢救人员"),
        Source(JIANGMEN, "第三类情形", "外出期间异地急病就医备案"),
        Source(PLATFORM, "适用人群", "因工作、旅游等原因异地急诊抢救人员"),
    ),
    _rule(
        "K6",
        "Other temporary (其他临时外出就医人员), and the kinds each region files (Jiangmen "
        "names three situations, none of them other temporary)",
        (_N, _X, _J),
        Source(XIAMEN, "跨省异地就医备案的条件", "以及其他跨省临时外出就医人员"),
        Source(JIANGMEN, "一、符合异地就医备案的三类情形"),
        Source(PLATFORM, "适用人群", "以及其他跨省临时外出就医人员"),
    ),
    _rule(
        "K7",
        "Never Hong Kong, Macao, Taiwan or abroad (applied to every region)",
        (_J,),
        Source(JIANGMEN, "第二类情形; 第三类情形", "不含赴港、澳、台地区及出国"),
    ),
    _rule(
        "K8",
        "Scope by region: care outside the province, or outside the city, needs a filing",
        (_N, _X, _J, "440300"),
        Source(XIAMEN, "注意事项", "省内异地就医无需备案"),
        Source(JIANGMEN, "第二类情形", "派驻市外; 在市外长期居住"),
        Source(PLATFORM, "适用人群", "长期在参保省(自治区、直辖市)以外工作、居住、生活"),
        Source(REIMBURSEMENT, "备案要求", "部分省份如深圳,省内异地就医无需备案"),
    ),
    # §2 ---------------------------------------------------------------------------------------
    _rule(
        "L1",
        "Draft, submit, then review or instant effect, per region and channel",
        (_N, _X),
        Source(XIAMEN, "跨省异地就医备案的办理方式", "备案即时生效; 备案当场生效"),
        Source(PLATFORM, "查看备案结果", "备案信息提交后,自动弹出提示页,提示备案是否成功"
               "…备案成功后,即时生效"),
    ),
    _rule(
        "L2",
        "The statuses a person sees: under review, effective, rejected, cancelled, expired",
        (_N, _X),
        Source(XIAMEN, "如何查看备案状态", "若备案状态显示“备案成功”…若显示“审核中”或“失败”"),
        Source(PLATFORM, "如何查看备案状态", "可以查看历次线上备案的进度和结果"),
    ),
    _rule(
        "L3",
        "A person queries their filings and sees the effective ones",
        (_N, _X),
        Source(XIAMEN, "查询备案状态", "“业务经办-异地就医备案-有效备案记录”"
               "功能查看或撤销有效备案记录"),
        Source(PLATFORM, "查看备案结果", "点击【查看备案记录】按钮,可查询异地就医备案状态"),
    ),
    _rule(
        "L4",
        "Cancel by the person, online or at the counter",
        (_N, _X),
        Source(XIAMEN, "撤销备案", "参保人员可到参保地医保经办机构或通过…"
               "多种线上渠道取消异地就医备案"),
        Source(PLATFORM, "如何取消备案", "选择需要取消的备案信息,点击【取消备案】"),
    ),
    _rule(
        "L5",
        "A change is a cancellation plus a new filing, under the cancel lock",
        (_N, _X),
        Source(XIAMEN, "注意事项", "备案生效3个月内不可变更/注销"),
        Source(N22),
    ),
    _rule(
        "L6",
        "One effective filing per person, insurance type and treatment region at a time (a "
        "safe default: the first is cancelled before a second takes effect)",
        (_N,),
        Source(SERVICE),
    ),
    _rule(
        "L7",
        "The channel is recorded on every filing and transition: apps, web hall, kiosk, "
        "counter, phone (working hours), the hospital's information system",
        (_N, _X, _J),
        Source(XIAMEN, "跨省异地就医备案的办理方式", "掌上办理; 网上办理; 自助办理; 窗口办理"),
        Source(JIANGMEN, "二、异地就医备案办理途径", "“江门社保”手机APP…“社保网上服务大厅”,"
               "或拨打参保地异地就医备案电话专线; 以上电话服务时间为:工作日上午8:30至12:00,"
               "下午14:30至17:30"),
        Source(PLATFORM, "备案流程", "通过国家医保服务平台APP; 通过地方医保小程序"),
    ),
    _rule(
        "L8",
        "Filing for another person: a relative, or the employer for a posted worker",
        (_J,),
        Source(JIANGMEN, "第二类情形; 第三类情形", "参保人或参保用人单位填写; 参保人或亲属填写"),
    ),
    # §3 ---------------------------------------------------------------------------------------
    _rule(
        "V1",
        "Long-term validity: at least a year, or indefinite",
        (_N, _X),
        Source(XIAMEN, "备案有效期", "跨省异地长期居住人员的备案长期有效"),
        Source(PLATFORM, "备案有效期", "跨省异地长期居住人员备案时限不得短于一年"),
        Source(N22, "", "长期有效"),
    ),
    _rule(
        "V2",
        "The cancel and change lock after a filing takes effect",
        (_N, _X),
        Source(XIAMEN, "注意事项", "备案生效3个月内不可变更/注销"),
        Source(PLATFORM, "备案有效期", "且6个月内不得取消"),
    ),
    _rule(
        "V3",
        "Temporary validity: six months, or at least six months",
        (_N, _X),
        Source(XIAMEN, "备案有效期", "临时外出就医人员的备案有效期一般不少于6个月"),
        Source(PLATFORM, "备案有效期", "跨省临时外出就医人员备案有效期为6个月"),
        Source(N22, "", "不少于6个月"),
    ),
    _rule(
        "V4",
        "A temporary filing may be cancelled at any time within its validity",
        (_N,),
        Source(PLATFORM, "备案有效期", "有效期内可随时取消"),
    ),
    _rule(
        "V5",
        "An admission inside the validity covers the whole stay",
        (_N,),
        Source(N22),
    ),
    _rule(
        "V6",
        "Filing by personal commitment (承诺制); the two-way entitlement starts once the "
        "documents are supplied",
        (_N, _X),
        Source(XIAMEN, "需要哪些材料", "户口簿首页+本人常住人口登记卡(或个人承诺书)"),
        Source(N22),
    ),
    # §4 ---------------------------------------------------------------------------------------
    _rule(
        "M1",
        "Identity (e-voucher, ID card or social security card; a valid resident ID number) "
        "and the declaration form",
        (_N, _X),
        Source(XIAMEN, "通用材料", "医保电子凭证/有效身份证件/社会保障卡; 《异地就医登记备案表》"),
        Source(REIMBURSEMENT, "基本材料", "医保电子凭证或有效身份证件或社会保障卡(原件)"),
    ),
    _rule(
        "M2",
        "Resettled retiree: household register (or a commitment) and residence proof",
        (_N, _X, _J),
        Source(XIAMEN, "分类材料", "户口簿首页+本人常住人口登记卡(或个人承诺书); "
               "居住证明(如房产证、居住证等)"),
        Source(JIANGMEN, "第二类情形", "异地安置退休人员或在市外长期居住人员提供本人安置地身份证、"
               "户口簿、居住证等材料"),
        Source(PLATFORM, "备案材料", "异地安置退休人员提供异地居民户口簿"),
    ),
    _rule(
        "M3",
        "Long-term resident: residence permit or residence proof",
        (_N, _X, _J),
        Source(XIAMEN, "分类材料", "异地安置退休/长期居住人员; 居住证明(如房产证、居住证等)"),
        Source(JIANGMEN, "第二类情形", "在市外长期居住人员提供本人安置地身份证、"
               "户口簿、居住证等材料"),
        Source(PLATFORM, "备案材料", "异地长期居住人员提供异地居住证"),
    ),
    _rule(
        "M4",
        "Posted worker: a posting certificate, local employer certificate or labour contract",
        (_N, _X, _J),
        Source(XIAMEN, "分类材料", "参保地单位派出证明/异地工作单位证明/工作合同(任选其一)"),
        Source(JIANGMEN, "第二类情形", "单位派驻证明(证明应注明工作原因、地点、时间)"),
        Source(PLATFORM, "备案材料", "常驻异地工作人员提供参保地工作单位派出凭证"
               "或异地工作劳动合同"),
    ),
    _rule(
        "M5",
        "Referral: the referral certificate of a designated hospital",
        (_X, _J),
        Source(XIAMEN, "分类材料", "参保地定点医疗机构开具的转诊转院证明"),
        Source(JIANGMEN, "第一类情形", "《江门市基本医疗保险市外转院(诊)申请表》"),
    ),
    _rule(
        "M6",
        "Emergency: no documents where treated as filed; Jiangmen: the emergency diagnosis",
        (_X, _J),
        Source(XIAMEN, "分类材料", "无需额外材料,视同已备案"),
        Source(JIANGMEN, "第三类情形", "本次急病或抢救住院疾病诊断证明书"),
    ),
    _rule(
        "M7",
        "Students: the school-stamped filing form, or the student card",
        (_X, _J),
        Source(XIAMEN, "特殊情形补充材料", "学生需提供学校盖章的备案登记表"),
        Source(JIANGMEN, "第二类情形", "属于在校学生的,应提供学生证等能证明其学生身份的材料"),
    ),
    _rule(
        "M8",
        "Flexible employment: residence permit, business licence or property certificate",
        (_X,),
        Source(XIAMEN, "特殊情形补充材料", "灵活就业人员需提供居住证/营业执照/房产证等"),
    ),
    _rule(
        "M9",
        "Xiamen: a social security card numbered 3502… is replaced before filing",
        (_X,),
        Source(XIAMEN, "特殊情形补充材料", "社保卡卡号为3502开头的需更换社保卡"),
    ),
    _rule(
        "M10",
        "First filing: the card's cross-province settlement function is checked",
        (_X,),
        Source(XIAMEN, "注意事项", "首次备案需检查社保卡跨省结算功能是否正常"),
    ),
    _rule(
        "M11",
        "Online: the person confirms the notice and signs the commitment letter",
        (_N, _X),
        Source(XIAMEN, "线上备案流程", "阅读《个人告知书》后填写信息并提交"),
        Source(PLATFORM, "备案流程", "选中【本人已仔细阅读备案告知书】; 签署并提交承诺书"),
    ),
    # §5 ---------------------------------------------------------------------------------------
    _rule(
        "E1",
        "An emergency while away is treated as already filed (视同已备案)",
        (_X,),
        Source(XIAMEN, "急诊抢救人员", "因工作、旅游等原因异地急诊抢救人员视同已备案,"
               "无需办理异地就医备案手续"),
    ),
    _rule(
        "E2",
        "A retro filing made before discharge settlement still settles directly; it starts on "
        "or before the admission",
        (_N, _X),
        Source(XIAMEN, "备案时效", "参保人员在出院结算前补办跨省异地就医备案手续,"
               "确认备案生效后可直接结算"),
        Source(N22),
    ),
    _rule(
        "E3",
        "Jiangmen emergency: file within 10 days of admission and before discharge",
        (_J,),
        Source(JIANGMEN, "第三类情形", "在参保人入院10日内,且出院之前办理异地就医备案手续"),
    ),
    _rule(
        "E4",
        "Jiangmen referral: the hospital applies, its medical office reviews and stamps, it "
        "reports through the information system; the deductible continues",
        (_J,),
        Source(JIANGMEN, "第一类情形", "由定点医疗机构临床科室根据参保人病情提出转院申请…"
               "经定点医疗机构医务科(或医保科,下同)审核后盖章,并通过信息系统上报社会保险经办机构"
               "核准后转院。参保人无需到社会保险经办机构前台办理,本次转院可连续计算起付标准"),
    ),
    _rule(
        "E5",
        "Jiangmen critical case: transfer first, reported within 10 days and before discharge",
        (_J,),
        Source(JIANGMEN, "第一类情形", "特殊危急病情,参保人经医务科批准后可先行转院,"
               "并自转院之日起10日内、异地住院出院前,由定点医疗机构通过信息系统补上报备案"),
    ),
    _rule(
        "E6",
        "Jiangmen: a referred stay of more than 60 days needs an extension",
        (_J,),
        Source(JIANGMEN, "第一类情形", "在市外医疗机构住院的时间超过60天的,参保人或家属应凭"
               "收治医疗机构出具的需继续住院治疗相关资料,到参保地社会保险经办机构办理"
               "市外异地住院延期申请手续"),
    ),
    _rule(
        "E7",
        "Treat first, file within working days after treatment (some cities; none configured)",
        (),
        Source(REIMBURSEMENT, "时效性要求", "部分城市允许“先就医后备案”,但需在就医后3-10个"
               "工作日内补办备案手续"),
    ),
    # §6 ---------------------------------------------------------------------------------------
    _rule(
        "P1",
        "With an effective filing, a networked institution settles directly and the person "
        "pays only their share",
        (_N, _J),
        Source(JIANGMEN, "三、异地就医直接结算流程", "出院时住院医疗费用按基本医疗保险有关规定"
               "进行结算,参保人只需支付应由个人支付的费用"),
        Source(REIMBURSEMENT, "持卡结算", "在已开通异地联网结算的定点医药机构,"
               "持社保卡或医保电子凭证直接结算医疗费用"),
    ),
    _rule(
        "P2",
        "The treatment place's catalogue, the insured place's policy",
        (_N,),
        Source(REIMBURSEMENT, "报销比例", "报销比例执行“就医地的医保目录,参保地的报销政策”"),
    ),
    _rule(
        "P3",
        "Xiamen, not filed: 10% borne first at a hospital; a pharmacy purchase not reimbursed",
        (_X,),
        Source(XIAMEN, "费用报销", "未按规定办理跨省异地就医备案手续的,在省外定点医疗机构发生的"
               "符合基本医疗保险规定的医疗费用,先由个人负担10%后再按本市规定享受待遇;"
               "在省外定点零售药店发生的购药费用不予报销"),
    ),
    _rule(
        "P4",
        "Temporary filings may be paid at a lower ratio, up to a ceiling; in-province ratios",
        (_N, _X, "440300"),
        Source(XIAMEN, "注意事项", "备案后可在就医地直接结算,享受与参保地相同的报销比例"),
        Source(REIMBURSEMENT, "报销比例; 政策差异", "通常降幅不高于20%; "
               "报销比例可能降低10-20个百分点; 按照市内就医支付比例的一定比例支付(如90%或80%)"),
        Source(N22),
    ),
    _rule(
        "P5",
        "Manual reimbursement (手工报销) where direct settlement fails, and its documents",
        (_N,),
        Source(REIMBURSEMENT, "持卡结算; 需要准备哪些材料", "因系统故障等原因不能直接结算的,"
               "需保存好相关结算单据及证明材料,回参保地申请手工报销"),
    ),
    _rule(
        "P6",
        "The deadline of manual reimbursement, counted from the expense, discharge or receipt",
        (_N, "440300", "310000"),
        Source(REIMBURSEMENT, "时效性要求", "大多数地区的异地报销需要在医疗费用发生或出院之日起"
               "6个月至1年内完成…深圳规定应在费用发生或出院之日起十二个月内申请报销,"
               "而上海则要求在就医医疗机构开具收据之日起3个月内申请"),
    ),
    _rule(
        "P7",
        "Outpatient chronic and special diseases settle directly only where enabled and declared",
        (_N,),
        Source(REIMBURSEMENT, "门诊慢特病报销", "参保人员需在已开通该服务的定点医疗机构就医,"
               "并主动告知身份和病种待遇"),
    ),
    # §7 ---------------------------------------------------------------------------------------
    _rule(
        "C1",
        "A period in days, months or years starts the day after",
        (_N,),
        Source(CIVIL_CODE, "第二百零一条", "按照年、月、日计算期间的，开始的当日不计入，"
               "自下一日开始计算。"),
    ),
    _rule(
        "C2",
        "In months or years, the period ends on the same-numbered day of its final month, or "
        "that month's last day",
        (_N,),
        Source(CIVIL_CODE, "第二百零二条", "按照年、月计算期间的，到期月的对应日为期间的"
               "最后一日；没有对应日的，月末日为期间的最后一日。"),
    ),
    _rule(
        "C3",
        "A last day that is a statutory rest day moves to the next working day",
        (_N,),
        Source(CIVIL_CODE, "第二百零三条", "期间的最后一日是法定休假日的，"
               "以法定休假日结束的次日为期间的最后一日。"),
    ),
    _rule(
        "C4",
        "The last day ends at 24:00 local time, or at closing time where there are hours",
        (_N,),
        Source(CIVIL_CODE, "第二百零三条", "期间的最后一日的截止时间为二十四时；有业务时间的，"
               "停止业务活动的时间为截止时间。"),
    ),
    _rule(
        "C5",
        "C3 and C4 move deadlines to act (file, report, apply, claim); a validity or a lock "
        "simply ends on its last day",
        (_N,),
        Source(CIVIL_CODE, "第二百零三条"),
        Source(SERVICE),
    ),
    _rule(
        "C6",
        "Unless a rule says otherwise; working days follow the State Council calendar, kept as "
        "data; a year it does not know yet gives a provisional deadline",
        (_N,),
        Source(CIVIL_CODE, "第二百零四条", "期间的计算方法依照本法的规定，但是法律另有规定"
               "或者当事人另有约定的除外。"),
        Source(REIMBURSEMENT, "时效性要求", "3-10个工作日"),
    ),
    # §8 ---------------------------------------------------------------------------------------
    _rule("A1", "A call needs a valid, unrevoked API key (401)", (), Source(SERVICE)),
    _rule(
        "A2",
        "The route admits the key's role (403); verifying the whole chain is the administrator's",
        (),
        Source(SERVICE),
    ),
    _rule(
        "A3",
        "A key sees only the objects of its person, organisation or regions (404, as if absent)",
        (),
        Source(SERVICE),
    ),
    _rule(
        "A4",
        "A hospital acts only for itself: admissions, referrals and retro filings of its own "
        "hospital code",
        (),
        Source(SERVICE),
    ),
    _rule(
        "A5",
        "What a key states when issued: its role, holder and organisation; an officer or "
        "auditor key its regions or all regions; an insured key its person",
        (),
        Source(SERVICE),
    ),
    # §9 ---------------------------------------------------------------------------------------
    _rule(
        "R1",
        "A command that names the version it read (expected_version, If-Match) applies to that "
        "version only; a stale one changes nothing and is recorded with both versions",
        (),
        Source(SERVICE),
    ),
)  # fmt: skip

RULES: Mapping[str, Rule] = MappingProxyType({r.id: r for r in _RULES})


# -- rendering ---------------------------------------------------------------------------------


def as_records() -> list[dict[str, Any]]:
    """The catalogue as plain data (`filing policies rules --json`)."""
    return [
        {
            "id": r.id,
            "section": r.section,
            "title": r.title,
            "regions": list(r.regions),
            "sources": [
                {
                    "document": s.document.name,
                    "where": s.where or None,
                    "passage": s.passage or None,
                }
                for s in r.sources
            ],
        }
        for r in _RULES
    ]


def _regions(rule: Rule) -> str:
    names = (c if c == NATIONAL else f"{c} {REGION_NAMES[c]}" for c in rule.regions)
    return ", ".join(names) or "—"


def _cited(source: Source) -> str:
    where = f", {source.where}" if source.where else ""
    passage = f": 「{source.passage}」" if source.passage else ""
    return source.document.name + where + passage


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown() -> str:
    """RULES.md: each section's rules in a table, then the sources and regions."""
    out = [
        "# Rules catalogue",
        "",
        "Generated by `filing policies rules --markdown` from `states/catalogue.py`; do not edit.",
        "Every rule id cited in the code, `config.toml`, errors, audit records and the README is",
        "one of these. Regions are those whose sources set the rule (`national`: the national",
        "default); passages are quoted in the source's own words.",
    ]
    for letter, heading in SECTIONS.items():
        out += ["", f"## {heading}", "", "| id | rule | regions | sources |", "|---|---|---|---|"]
        for r in (r for r in _RULES if r.id[0] == letter):
            sources = "<br>".join(_cited(s) for s in r.sources)
            out.append(f"| {r.id} | {_cell(r.title)} | {_regions(r)} | {_cell(sources)} |")
    out += ["", "## Sources", ""]
    out += [f"- **{d.name}**: {d.about}" for d in DOCUMENTS]
    out += ["", "## Regions", ""]
    out += [f"- `{code}`: {name}" for code, name in REGION_NAMES.items()]
    return "\n".join(out) + "\n"


def _width(text: str) -> int:
    """Terminal columns: a wide (CJK) character takes two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def table(width: int = 60) -> str:
    """A table for the terminal: id, regions, the keys of the sources, and the title (wrapped
    at `width`), then what the keys stand for."""
    header = ("ID", "REGIONS", "SOURCES", "RULE")
    rows = [
        (r.id, " ".join(r.regions) or "-", " ".join(s.document.key for s in r.sources), r.title)
        for r in _RULES
    ]
    widths = [max(_width(row[i]) for row in (header, *rows)) for i in range(3)]
    indent = " " * (sum(widths) + 2 * len(widths))
    lines = []
    for row in (header, *rows):
        first, *more = textwrap.wrap(row[3], width) or [""]
        lines.append(
            "  ".join(_pad(cell, widths[i]) for i, cell in enumerate(row[:3])) + "  " + first
        )
        lines += [indent + line for line in more]
    lines += ["", "Sources:"]
    lines += [f"  {_pad(d.key, 10)}{d.name}: {d.about}" for d in DOCUMENTS]
    lines += ["", "Regions:"]
    lines += [f"  {_pad(code, 10)}{name}" for code, name in REGION_NAMES.items()]
    return "\n".join(lines) + "\n"
