"""The "Heat" colour map (colorcet CET-L3, linear black-red-yellow-white) as 256 RGB bytes.

Why embedded: the review window offered it through pyqtgraph, and the core may not import
pyqtgraph (nor does matplotlib ship it). The table is pyqtgraph 0.14's
``colors/maps/CET-L3.csv`` with each component converted to a byte as pyqtgraph converts it
(``int(255 * c + 0.5)``), so the core draws exactly the colours the window showed.

Licence: CET perceptually uniform colour maps by Peter Kovesi, https://colorcet.com
(Kovesi, P. "Good Colour Maps: How to Design Them", arXiv:1509.03700, 2015), distributed
under the Creative Commons Attribution 4.0 International licence (CC BY 4.0). The values are
unchanged; only their encoding (hex bytes) differs.
"""
from __future__ import annotations

#: 256 x RGB, 6 hex digits per colour, 16 colours per line, index 0 (heat 0) first.
CET_L3_HEX = (
    "0000000700000d00001200001600001a00001d00002000002200002500002700002900002b00002d00002f0100310100"
    "3201003401003601003701003901003a01003c01003d01003e0100400100420100430100450100460100470100490100"
    "4a01004c01004e01004f01005101005201005401005501005701005801005a01005c01005d01005f0100600100620100"
    "6301006501006701006802006a02006c02006d02006f02007002007202007402007502007702007902007a02007c0200"
    "7d02007f02008102008303008403008603008803008903008b03008d03008e0300900300920300930300950400970400"
    "9804009a04009c04009e04009f0400a10400a30400a50500a70500a80500aa0500ac0500ad0500af0500b10600b30600"
    "b50600b60600b80600ba0700bc0700bd0700bf0700c10700c30800c50800c60800c80800ca0900cc0900ce0900cf0900"
    "d10a00d30a00d50a00d60b00d80b00da0c00dc0c00de0d00e00d00e10e00e30e00e50f00e71000e81100ea1200ec1300"
    "ed1500ef1700f01900f11b00f31e00f42000f52300f62600f72900f82c00f82f00f93200fa3500fa3800fb3b00fb3e00"
    "fc4100fc4400fc4600fd4900fd4c00fd4f00fd5100fd5400fe5600fe5800fe5b00fe5d00fe6000fe6200fe6400fe6700"
    "ff6900ff6b00ff6d00ff6f00ff7200ff7400ff7600ff7800ff7a00ff7c00ff7e00ff8000ff8200ff8400ff8600ff8800"
    "ff8a00ff8c00ff8e00ff8f00ff9100ff9300ff9500ff9700ff9801ff9a01ff9c01ff9e01ffa001ffa101ffa301ffa501"
    "ffa701ffa801ffaa01ffac02ffad02ffaf02ffb102ffb302ffb402ffb602ffb703ffb903ffbb03ffbc03ffbe03ffc004"
    "ffc104ffc304ffc404ffc605ffc805ffc905ffcb05ffcd06ffce06ffd006ffd107ffd307ffd408ffd608ffd708ffd909"
    "ffdb09ffdc0affde0bffdf0bffe10cffe20dffe40effe60effe70fffe910ffea12ffec13ffed15ffef17fff01bfff21f"
    "fff324fff52bfff632fff73cfff947fffa54fffb62fffc72fffd84fffd96fffea8fffebbffffcdffffdeffffefffffff"
)
